"""`visualize network`'s shapes on arrows, "x N" for repeated pieces, compact and vertical
layouts."""

import xml.etree.ElementTree as ET

from typer.testing import CliRunner

import cnnkit
from cnnkit.cli import app
from cnnkit.viz.network import build_blocks, network_figure

runner = CliRunner()


def svg_texts(path):
    return [t.strip() for t in ET.parse(path).getroot().itertext() if t.strip()]


def test_repeated_blocks_are_drawn_once_with_their_count():
    network = cnnkit.load("specs/resnet50.txt")
    blocks = build_blocks(network, repeats=True)
    counts = sorted({(b.unit, b.repeat) for b in blocks if b.repeat > 1}, key=lambda u: u[0])
    assert [n for _, n in counts] == [2, 3, 5, 2]
    assert len(build_blocks(network)) == 73 and len(blocks) == 41  # 8 of 16 bottlenecks drawn
    compact = build_blocks(network, compact=True)
    assert [b.group for b in compact if b.group] == [
        "project64", "bottleneck64", "down128", "bottleneck128", "down256", "bottleneck256",
        "down512", "bottleneck512"]
    assert all(b.lane == 0 for b in compact)  # one lane: ResNet-50 on one screen


def test_every_arrow_carries_its_shape_and_compact_resnet50_fits_a_screen(tmp_path):
    out = tmp_path / "r50.svg"
    result = runner.invoke(app, ["visualize", "network", "specs/resnet50.txt", "--compact",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    texts = svg_texts(out)
    for shape in ("224x224x3", "112x112x64", "56x56x256", "7x7x2048", "1000"):
        assert shape in texts
    assert "x 5" in texts and "bottleneck256" in texts
    figure = network_figure(cnnkit.load("specs/resnet50.txt"), compact=True)
    width, height = figure.get_size_inches() * figure.dpi
    assert width <= 1920 and height <= 400


def test_vertical_layout_runs_top_to_bottom(tmp_path):
    out = tmp_path / "vgg.png"
    result = runner.invoke(app, ["visualize", "network", "specs/vgg16.txt", "--vertical",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    figure = network_figure(cnnkit.load("specs/resnet18.txt"), vertical=True)
    width, height = figure.get_size_inches()
    assert height > 2 * width
