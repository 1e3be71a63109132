"""`cnnkit summarize` at 80, 120 and 200 columns, in notebooks and from Python: no cut
number, names that tell the rows apart, the totals last; the README's sample is the output."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import cnnkit
from cnnkit.calculator.render import LAYOUTS, SummaryView, layer_table
from cnnkit.cli import app, common

ROOT = Path(__file__).resolve().parent.parent
SPECS = {name: cnnkit.parse((ROOT / "specs" / f"{name}.txt").read_text(),
                            filename=f"specs/{name}.txt") for name in ("vgg16", "resnet50")}
WIDTHS = (80, 120, 200)


def rendered(summary, width: int) -> list[str]:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))
    console.print(SummaryView(summary))
    return console.export_text().splitlines()


def table_rows(lines: list[str]) -> list[tuple[str, str]]:
    """(the "#" cell, the layer cell as printed, indentation kept) of every body line."""
    header = next(i for i, line in enumerate(lines) if re.search(r"\blayer\b", line))
    start, end = lines[header].index("layer"), lines[header].index("output")
    rows = []
    for line in lines[header + 1:]:
        if line.startswith("parameters"):
            break
        index = line[:start].strip(" │┃")
        cell = line[start:end].rstrip(" │┃")
        if cell.strip() and cell.strip() != "total" and not set(cell) & set("─━"):
            rows.append((index, cell))
    return rows


def names_as_read(rows: list[tuple[str, str]]) -> list[str]:
    """Each layer's full name as a reader puts it together: its own cell, or, in the tree
    layout, the block headings above it at smaller indentation."""
    path: list[str] = []
    names = []
    for index, cell in rows:
        depth = (len(cell) - len(cell.lstrip())) // 2
        path = path[:depth]
        if index:
            names.append("/".join([*path, cell.strip()]))
        else:
            path.append(cell.strip())
    return names


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("spec", SPECS)
def test_table_fits_keeps_every_digit_and_every_name(spec, width):
    summary = SPECS[spec].summary()
    lines = rendered(summary, width)
    assert "…" not in "\n".join(lines)
    assert max(len(line) for line in lines) <= width
    rows = table_rows(lines)
    assert names_as_read(rows) == [row.name for row in summary.rows]
    printed = {int(index): cell for index, cell in rows if index}
    assert sorted(printed) == [row.index for row in summary.rows]
    body = {int(line[:8].strip(" │┃").split()[0]): line for line in lines
            if re.match(r"^[│ ]*\d+ ", line)}
    for row in summary.rows:  # whole numbers, each in its own row
        assert f" {row.macs:,}" in body[row.index]
        assert "x".join(map(str, row.receptive_field)) in body[row.index]
    labels = [line.split()[0] for line in lines[-12:] if line[:1].isalpha()]
    assert labels[-5:] == ["parameters", "MACs", "activations", "training", "executor"]
    assert any(line.startswith(f"parameters   {summary.params:,} ") for line in lines)
    assert any(line.startswith(f"MACs         {summary.macs:,} per image") for line in lines)


def test_formulas_go_first_and_wide_consoles_get_everything():
    vgg = SPECS["vgg16"].summary()
    assert "(3*3*64)*128 = 73,728" in "\n".join(rendered(vgg, 200))
    narrow = "\n".join(rendered(vgg, 80))
    assert "73,728" not in narrow and "73,856" in narrow  # weights + biases as params
    resnet = SPECS["resnet50"].summary()
    assert any("layer1.1/project64.1/shortcut/CONV1-256" in line
               for line in rendered(resnet, 200))


def test_width_arithmetic_agrees_with_rich():
    """The layout is chosen from cell widths; rich must draw it at exactly that width."""
    from rich.measure import Measurement

    console = Console(width=80, file=open(os.devnull, "w"))
    for network in SPECS.values():
        for layout in LAYOUTS:
            table = layer_table(network.summary(), layout)
            measured = Measurement.get(console, console.options.update_width(10**6),
                                       table.render())
            assert measured.maximum == table.width, layout


@pytest.mark.parametrize("width", WIDTHS)
def test_columns_env_sets_the_width_of_piped_output(width):
    env = {**os.environ, "COLUMNS": str(width)}
    out = subprocess.run([sys.executable, "-m", "cnnkit", "summarize", "specs/resnet50.txt"],
                         capture_output=True, text=True, check=True, cwd=ROOT, env=env).stdout
    assert out.splitlines() == rendered(SPECS["resnet50"].summary(), width)


def test_cli_runner_output_follows_the_console_width(monkeypatch):
    monkeypatch.setattr(common.console, "width", 80)
    out = CliRunner().invoke(app, ["summarize", str(ROOT / "specs/vgg16.txt")]).stdout
    assert max(len(line) for line in out.splitlines()) <= 80 and "15,470,264,320" in out


def test_legend_only_when_asked():
    vgg = str(ROOT / "specs/vgg16.txt")
    runner = CliRunner()
    assert "Activations count" not in runner.invoke(app, ["summarize", vgg]).stdout
    for flag in ("--legend", "--explain"):
        out = runner.invoke(app, ["summarize", vgg, flag]).stdout
        assert "\nActivations count every tensor" in out


README_SAMPLES = re.findall(r"```\n\$ ((?:COLUMNS=\d+ )?cnnkit summarize [^\n]*)\n(.*?)```",
                            (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def program_output(command: str) -> list[str]:
    """The lines a README command prints: `[COLUMNS=N] cnnkit summarize ARGS [| head -N]`."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # piped: 200 columns
    env["CNNKIT_NUM_THREADS"] = "2"  # the executor line's im2col tiles are per thread
    command, _, head = command.partition(" | head -")
    words = command.split()
    if words[0].startswith("COLUMNS="):
        env["COLUMNS"] = words.pop(0).split("=")[1]
    out = subprocess.run([sys.executable, "-m", "cnnkit", *words[1:]], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    lines = [line.rstrip() for line in out.splitlines()]
    return lines[:int(head)] if head else lines


def test_readme_has_the_samples():
    assert [command.split()[-1] for command, _ in README_SAMPLES][:2] == ["specs/vgg16.txt",
                                                                          "-12"]


@pytest.mark.parametrize("command, sample", README_SAMPLES, ids=[c for c, _ in README_SAMPLES])
def test_readme_samples_are_what_the_program_prints(command, sample):
    """Each run of lines between `...` appears whole and in order; the first run begins the
    output and the last one ends it."""
    chunks = [chunk.strip("\n").splitlines() for chunk in re.split(r"^\.\.\.$", sample,
                                                                   flags=re.M)]
    lines = program_output(command)
    assert lines[:len(chunks[0])] == chunks[0]
    assert lines[len(lines) - len(chunks[-1]):] == chunks[-1]
    position = 0
    for chunk in chunks:
        while lines[position:position + len(chunk)] != chunk:
            position += 1
            assert position < len(lines), f"not in the output:\n{chunk[0]}"
        position += len(chunk)


def test_reprs_are_one_short_line():
    network = SPECS["vgg16"]
    expected = ("224x224x3 -> 1000, 40 layers, 138,357,544 params, 15,470,264,320 MACs")
    assert repr(network).startswith("<Network ") and repr(network).endswith(f"{expected}>")
    assert repr(network.summary()) == f"<Summary {network.filename}: {expected}>"
    assert repr(cnnkit.parse("INPUT 8x8x1 -> FC-2").summary()) == \
        "<Summary 8x8x1 -> 2, 2 layers, 130 params, 128 MACs>"


def test_rich_and_html_renderings():
    summary = SPECS["resnet50"].summary()
    console = Console(width=120, record=True, file=open(os.devnull, "w"))
    console.print(SPECS["resnet50"])  # Network.__rich__: the summary's table
    assert console.export_text().splitlines() == rendered(summary, 120)
    html = summary._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == len(summary.rows) + 2
    assert "layer1.1/project64.1/shortcut/CONV1-256" in html and "4,089,184,256" in html
    assert SPECS["resnet50"]._repr_html_() == html


def test_to_rows_and_to_pandas(monkeypatch):
    summary = SPECS["vgg16"].summary()
    rows = summary.to_rows()
    assert len(rows) == len(summary.rows) and rows[1]["weights"] == 1728
    assert sum(row["params"] for row in rows) == 138_357_544

    class FakeFrame:
        def __init__(self, data):
            self.data = data

        def set_index(self, column):
            self.index = column
            return self

    fake = type(sys)("pandas")
    fake.DataFrame = FakeFrame
    monkeypatch.setitem(sys.modules, "pandas", fake)
    frame = summary.to_pandas()
    assert frame.data == rows and frame.index == "index"
    monkeypatch.setitem(sys.modules, "pandas", None)  # not installed
    with pytest.raises(ImportError, match="pip install pandas"):
        summary.to_pandas()
