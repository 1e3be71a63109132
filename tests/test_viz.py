"""`cnnkit visualize` and cnnkit.viz: exact filter pixels, trained filters that are smoother
than their initialization, feature maps wired from weights to picture, every command's
picture, the terminal rendering, and clean errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.engine.model import Model
from cnnkit.graph.build import parse
from cnnkit.training.config import TrainConfig
from cnnkit.training.predict import load_run
from cnnkit.training.rundir import RunDirectory, save_arrays, write_atomic
from cnnkit.training.trainer import Trainer
from cnnkit.viz import VizError
from cnnkit.viz.activations import activation_picture, feature_grid
from cnnkit.viz.filters import (
    conv_weights,
    filter_grid,
    filter_mode,
    neighbour_correlation,
    pick_conv,
)
from cnnkit.viz.network import build_blocks
from cnnkit.viz.terminal import HALF_BLOCK, render

runner = CliRunner()

# LeNet-5 as specs/lenet5.txt has it (a copy, so that the margins below, measured on this
# network, stay valid whatever becomes of the file).  Its tanh layers get Glorot initial
# weights (std 0.11 for the first layer, against He's 0.28 for SimpleConvNet's ReLU one),
# small enough that a short training run visibly reshapes the filters.
LENET5 = """INPUT 28x28x1
-> CONV5-6(pad=2) -> TANH -> AVGPOOL2
-> CONV5-16(pad=0) -> TANH -> AVGPOOL2
-> FC-120 -> TANH
-> FC-84 -> TANH
-> FC-10
"""
SEEDS = (0, 1, 2)
LIMIT, EPOCHS, LR = 2000, 2, 0.003


def cli(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def train_run(path: Path, seed: int) -> RunDirectory:
    """What `cnnkit train specs/lenet5.txt --dataset mnist-sample --limit 2000 --epochs 2
    --lr 0.003 --seed SEED --device cpu` does."""
    config = TrainConfig(dataset="mnist-sample", epochs=EPOCHS, limit=LIMIT, lr=LR, seed=seed,
                         device="cpu")
    run = RunDirectory(path)
    Trainer(parse(LENET5, filename="lenet5.txt"), config, run).train()
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three short LeNet-5 runs on mnist-sample (seeds 0, 1, 2)."""
    root = tmp_path_factory.mktemp("runs")
    return [train_run(root / f"lenet-seed{seed}", seed) for seed in SEEDS]


def png(path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


# -- filter grids: exact pixels --------------------------------------------------------------

def test_gray_grid_normalizes_each_filter_min_black_max_white():
    w = np.zeros((2, 2, 1, 3))
    w[..., 0, 0] = [[0, 1], [2, 3]]
    w[..., 0, 1] = [[-5, 5], [0, 10]]  # its own range: 5 -> 170, not the first filter's
    w[..., 0, 2] = 7.0  # constant: no contrast, drawn black
    grid = filter_grid(w, "gray", scale=3, gap=1, columns=2)
    # 2 columns x 2 rows of 6-pixel cells, 1-pixel separators and frame
    assert grid.pixels.shape == (2 * 6 + 3, 2 * 6 + 3) and grid.pixels.dtype == np.uint8
    assert grid.mode == "gray" and grid.cell_size == (6, 6)
    cell = lambda y, x: grid.pixels[y:y + 6, x:x + 6]  # noqa: E731
    expected0 = np.kron(np.array([[0, 85], [170, 255]]), np.ones((3, 3)))
    expected1 = np.kron(np.array([[0, 170], [85, 255]]), np.ones((3, 3)))
    np.testing.assert_array_equal(cell(1, 1), expected0)
    np.testing.assert_array_equal(cell(1, 8), expected1)
    np.testing.assert_array_equal(cell(8, 1), np.zeros((6, 6)))
    np.testing.assert_array_equal(cell(8, 8), np.full((6, 6), 255))  # unused cell
    assert (grid.pixels[0] == 255).all() and (grid.pixels[:, 7] == 255).all()  # separators


def test_rgb_grid_normalizes_over_all_three_channels_of_a_filter():
    w = np.zeros((1, 2, 3, 2))
    w[0, 0, :, 0] = [1, 0, -1]
    w[0, 1, :, 0] = [3, 3, 3]
    w[..., 1] = np.arange(6).reshape(1, 2, 3) * 100.0
    grid = filter_grid(w, "rgb", scale=2, gap=2, columns=2)
    assert grid.mode == "rgb" and grid.pixels.shape == (2 + 2 + 2, 2 * 4 + 3 * 2, 3)
    first = grid.pixels[2:4, 2:6]
    np.testing.assert_array_equal(first[0, 0], [128, 64, 0])  # (v + 1) / 4 * 255, rounded
    np.testing.assert_array_equal(first[0, 2], [255, 255, 255])
    second = grid.pixels[2:4, 8:12]
    np.testing.assert_array_equal(second[1, 0], [0, 51, 102])
    np.testing.assert_array_equal(second[1, 3], [153, 204, 255])


def test_deeper_layers_show_capped_rows_of_slices_normalized_per_filter():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 8, 5))
    grid = filter_grid(w, "slices", scale=1, gap=1, max_filters=3, max_channels=4)
    assert grid.pixels.shape == (3 * 3 + 4, 4 * 3 + 5)
    assert (grid.filters_shown, grid.channels_shown) == (3, 4)
    assert grid.notes == ["showing the first 3 of 5 filters",
                          "showing the first 4 of 8 input channels"]
    # row 1 = filter 1; its slice 2 is normalized with the filter's range over all 8 slices
    f = w[..., 1]
    expected = np.rint((f[..., 2] - f.min()) / (f.max() - f.min()) * 255)
    np.testing.assert_array_equal(grid.pixels[5:8, 9:12], expected)


def test_filter_mode_follows_the_input_channels():
    colour = parse("INPUT 32x32x3 -> CONV3-8 -> RELU -> CONV3-4")
    first, second = (n for n in colour.nodes if n.kind == "conv")
    w1 = Model(colour).state_dict()
    assert filter_mode(colour, first, conv_weights(w1, first)) == "rgb"
    assert filter_mode(colour, second, conv_weights(w1, second)) == "slices"
    gray = parse(LENET5)
    conv = pick_conv(gray, None)
    assert conv.index == 1
    assert filter_mode(gray, conv, conv_weights(Model(gray).state_dict(), conv)) == "gray"
    with pytest.raises(VizError, match="layer 3 is AVGPOOL2, not a CONV.*1 \\(CONV5-6\\)"):
        pick_conv(gray, 3)


def test_neighbour_correlation_is_one_for_ramps_and_near_zero_for_noise():
    ramp = np.add.outer(np.arange(5.0), np.arange(5.0))[:, :, None, None]
    assert neighbour_correlation(ramp) == pytest.approx(1.0)
    noise = np.random.default_rng(0).normal(size=(5, 5, 1, 2000))
    assert abs(neighbour_correlation(noise)) < 0.06


# -- trained filters ---------------------------------------------------------------------

def test_trained_filters_differ_from_init_and_are_smoother(runs):
    """Observed over seeds 0-15 (this LeNet-5, mnist-sample --limit 2000, 2 epochs, Adam
    0.003): the first layer's mean neighbour correlation rose by 0.09 to 0.21 (mean 0.17;
    seeds 0-2: 0.151, 0.173, 0.177) and its weights moved by 30-48% of their norm.
    Asserted: more than 0.08 for each seed, 0.12 on average, and a 25% move."""
    deltas = []
    for run in runs:
        node = pick_conv(run.read_network(), None)
        initial = conv_weights(run.weights("init"), node)
        final = conv_weights(run.weights("final"), node)
        assert np.linalg.norm(final - initial) / np.linalg.norm(initial) > 0.25
        deltas.append(neighbour_correlation(final) - neighbour_correlation(initial))
    assert min(deltas) > 0.08, deltas
    assert np.mean(deltas) > 0.12, deltas


def test_compare_init_puts_initial_and_trained_grids_side_by_side(runs, tmp_path):
    run = runs[0]
    out = tmp_path / "compare.png"
    result = cli("visualize", "filters", run.path, "--compare-init", "--no-labels",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    node = pick_conv(run.read_network(), None)
    initial = filter_grid(conv_weights(run.weights("init"), node), "gray")
    final = filter_grid(conv_weights(run.weights("final"), node), "gray")
    image = png(out)
    assert image.mode == "L"
    h, w = final.pixels.shape
    assert image.size == (2 * w + 24, h)  # 6 filters 5x5: 3 x 2 cells of 40 pixels
    pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels[:, :w], initial.pixels)
    np.testing.assert_array_equal(pixels[:, -w:], final.pixels)
    assert not np.array_equal(initial.pixels, final.pixels)


def test_filters_default_output_and_labels(runs):
    result = cli("visualize", "filters", runs[0].path, "--layer", "4")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == runs[0].path / "viz" / "filters-4.png"
    image = png(path)
    grid = filter_grid(conv_weights(runs[0].weights("final"),
                                    runs[0].read_network().nodes[4]), "slices")
    # 16 rows (filters) of 6 slices, plus a title strip
    assert image.mode == "L" and image.width >= grid.pixels.shape[1]
    assert image.height > grid.pixels.shape[0]


# -- feature maps ---------------------------------------------------------------------------

EDGE_SPEC = "INPUT 16x16x1 -> CONV3-1 -> RELU -> POOL2 -> FC-2"


def make_edge_run(path: Path) -> RunDirectory:
    """A run directory by hand: one 3x3 vertical-edge filter (right minus left)."""
    network = parse(EDGE_SPEC, filename="edge.txt")
    model = Model(network)
    weights = model.state_dict()
    conv = pick_conv(network, None)
    w = np.zeros((3, 3, 1, 1), np.float32)
    w[:, 0, 0, 0], w[:, 2, 0, 0] = -1, 1
    weights[f"{conv.index}:{conv.name}/W"] = w
    weights[f"{conv.index}:{conv.name}/b"] = np.zeros(1, np.float32)
    run = RunDirectory(path)
    write_atomic(run.spec, EDGE_SPEC.encode())
    write_atomic(run.config, TrainConfig(dataset="mnist-sample").to_json().encode())
    save_arrays(run.weights_init, weights)
    save_arrays(run.weights_final, weights)
    return run


def bar_image(path: Path) -> Path:
    pixels = np.zeros((16, 16), np.uint8)
    pixels[:, 6:10] = 255  # a vertical bar, columns 6-9
    Image.fromarray(pixels).save(path)
    return path


def test_vertical_edge_filter_lights_up_along_the_bar_edge(tmp_path):
    run = make_edge_run(tmp_path / "edge")
    trained = load_run(run.path)
    image = np.asarray(Image.open(bar_image(tmp_path / "bar.png")))[..., None]
    picture, panels = activation_picture(trained, image)
    conv_panel, pool_panel = panels[1], panels[2]
    assert conv_panel.node == 1 and pool_panel.node == 3 and "16x16x1" in conv_panel.title
    s, gap = conv_panel.scale, 3
    maps = conv_panel.pixels[gap:gap + 16 * s:s, gap:gap + 16 * s:s]  # one pixel per value
    inner = maps[1:15]  # rows 0 and 15 see the zero padding
    assert (inner[:, [5, 6]] == 255).all()  # dark -> bright: the left edge, brightest
    assert (inner[:, [9, 10]] == 0).all()  # bright -> dark: the most negative
    assert (np.delete(inner, [5, 6, 9, 10], axis=1) == 128).all()  # flat: zero response
    pooled = pool_panel.pixels[gap:gap + 8 * pool_panel.scale:pool_panel.scale,
                               gap:gap + 8 * pool_panel.scale:pool_panel.scale]
    assert sorted(set(np.nonzero(pooled[1:7] == 255)[1])) == [2, 3]  # after ReLU, 2x2 pool
    # the panel is in the picture where its box says
    x, y, w, h = conv_panel.box
    np.testing.assert_array_equal(np.asarray(picture)[y:y + h, x:x + w], conv_panel.pixels)


def test_feature_grid_caps_maps_and_normalizes_each_map():
    maps = np.stack([np.full((4, 4), float(i)) for i in range(5)], axis=-1)
    maps[0, 0, :] = -1
    grid, shown, columns, scale = feature_grid(maps, scale=1, max_maps=3, gap=1)
    assert (shown, columns) == (3, 2) and grid.shape == (2 * 4 + 3, 2 * 4 + 3)
    assert grid[1, 1] == 0 and grid[1, 2] == 255  # each map's own min black, max white


def test_activations_command_from_file_and_from_dataset(runs, tmp_path):
    run = make_edge_run(tmp_path / "edge")
    out = tmp_path / "maps.png"
    result = cli("visualize", "activations", run.path, "--image", bar_image(tmp_path / "b.png"),
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert png(out).mode == "L" and png(out).width > 100
    result = cli("visualize", "activations", runs[0].path, "--index", 3)
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.name == "activations-test-3.png"
    image = png(path)
    assert image.height > 4 * 48  # input + CONV, POOL, CONV, POOL panels


# -- curves, confusion, network ---------------------------------------------------------------

def test_curves_overlay_runs_at_the_documented_size(runs, tmp_path):
    out = tmp_path / "curves.png"
    result = cli("visualize", "curves", runs[0].path, runs[1].path, "--out", out)
    assert result.exit_code == 0, result.output
    assert png(out).size == (1000, 400)
    svg = tmp_path / "curves.svg"
    assert cli("visualize", "curves", runs[0].path, "--out", svg).exit_code == 0
    assert ET.parse(svg).getroot().tag.endswith("svg")


def test_confusion_matrix_picture_with_class_names(runs, tmp_path):
    result = cli("visualize", "confusion", runs[0].path, "--dataset", "mnist-sample")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.name == "confusion-mnist-sample-test.png"
    image = png(path).convert("RGB")
    assert image.size == (800, 720)
    assert np.asarray(image).std() > 10  # not blank


def test_network_picture_png_and_svg(tmp_path):
    out = tmp_path / "lenet.png"
    result = cli("visualize", "network", "specs/lenet5.txt", "--out", out)
    assert result.exit_code == 0, result.output
    image = png(out)
    assert 500 < image.width < 800 and 150 < image.height < 400
    svg = tmp_path / "resnet.svg"
    assert cli("visualize", "network", "specs/resnet18.txt", "--out", svg).exit_code == 0
    root = ET.parse(svg).getroot()
    text = "".join(root.itertext())
    assert "CONV7-64" in text and "112x112x64" in text and "RES" in text


def test_network_blocks_fold_elementwise_layers_and_put_branches_side_by_side():
    blocks = build_blocks(parse(open("specs/resnet18.txt").read()))
    stem = blocks[1]
    assert [n.kind for n in stem.nodes] == ["conv", "bn", "relu"]
    down = [b for b in blocks if "shortcut" in b.nodes[0].name][0]
    main = [b for b in blocks if b.column == down.column and b is not down][0]
    assert main.lane != down.lane  # the projection shortcut runs beside the main branch
    adds = [b for b in blocks if b.kind == "add"]
    assert len(adds) == 8 and all(b.lane == 0 for b in adds)
    cat = build_blocks(parse(open("specs/googlenet.txt").read()))
    first = [b for b in cat if b.kind == "concat"][0]
    assert sorted(cat[i].lane for i in first.inputs) == [-1.5, -0.5, 0.5, 1.5]


# -- the terminal --------------------------------------------------------------------------

def test_show_renders_on_a_dumb_terminal(runs, tmp_path):
    result = cli("visualize", "filters", runs[0].path, "--show", "--out", tmp_path / "f.png",
                 env={"TERM": "dumb", "COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == str(tmp_path / "f.png") and len(lines) > 5
    assert max(len(line) for line in lines[:-1]) <= 60
    assert "\x1b[" not in result.stdout


def test_terminal_rendering_half_blocks_and_ascii():
    image = Image.fromarray(np.array([[[255, 0, 0], [0, 0, 255]],
                                      [[0, 255, 0], [255, 255, 255]]], np.uint8))
    plain = Console(file=io.StringIO(), color_system=None, width=40)
    assert render(image, plain) == 1
    colour = Console(file=io.StringIO(), color_system="truecolor", force_terminal=True,
                     width=40)
    assert render(image, colour) == 1
    text = colour.file.getvalue()
    assert text.count(HALF_BLOCK) == 2
    assert "38;2;255;0;0" in text and "48;2;0;255;0" in text  # red over green
    wide = Image.new("RGB", (300, 90), "white")
    narrow = Console(file=io.StringIO(), color_system="truecolor", force_terminal=True,
                     width=50, record=True)
    assert render(wide, narrow) == 8  # 300x90 -> 50x15 -> 8 lines of two pixel rows
    assert max(len(line) for line in narrow.export_text().splitlines()) <= 50


# -- bad input ------------------------------------------------------------------------------

def assert_clean_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_bad_input_gives_a_clear_message_and_exit_1(runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(cli("visualize", "filters", empty), 1, "spec.txt")
    assert_clean_error(cli("visualize", "filters", tmp_path / "nope"), 1,
                       "not a run directory")
    assert_clean_error(cli("visualize", "filters", runs[0].path, "--layer", "42"), 1,
                       "no layer 42", "1 (CONV5-6), 4 (CONV5-16)")
    assert_clean_error(cli("visualize", "curves", empty), 1, "no metrics.jsonl")
    no_init = tmp_path / "no-init"
    make_edge_run(no_init).weights_init.unlink()
    assert_clean_error(cli("visualize", "filters", no_init, "--compare-init"), 1,
                       "weights_init.npz")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    assert_clean_error(cli("visualize", "activations", no_init, "--image", broken), 1,
                       "cannot read")
    assert_clean_error(cli("visualize", "activations", no_init, "--image",
                           tmp_path / "missing.png"), 1, "no such image")
    assert_clean_error(cli("visualize", "activations", runs[0].path, "--index", 10 ** 6), 1,
                       "there is no image 1000000")
    assert_clean_error(cli("visualize", "network", "specs/lenet5.txt", "--out",
                           tmp_path / "x.jpg"), 2, ".png or .svg")
    assert_clean_error(cli("visualize", "activations", no_init), 2, "exactly one of")


def test_an_image_with_the_wrong_channel_count_is_refused(tmp_path):
    spec = "INPUT 8x8x2 -> CONV3-4 -> FC-2"
    network = parse(spec)
    run = RunDirectory(tmp_path / "two-channels")
    write_atomic(run.spec, spec.encode())
    write_atomic(run.config, json.dumps({"dataset": "mnist-sample"}).encode())
    save_arrays(run.weights_final, Model(network).state_dict())
    picture = tmp_path / "rgb.png"
    Image.new("RGB", (8, 8), "red").save(picture)
    assert_clean_error(cli("visualize", "activations", run.path, "--image", picture), 1,
                       "2-channel")


def test_cli_import_does_not_load_pillow_or_matplotlib():
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import cnnkit.cli"],
                            capture_output=True, text=True, check=True)
    loaded = [line for line in result.stderr.splitlines()
              if "PIL" in line or "matplotlib" in line]
    assert loaded == []
