"""The command line: output formats, exit codes, and no traceback whatever the input."""

import json
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnnkit.cli import app

runner = CliRunner()
VGG16 = "specs/vgg16.txt"


def run(*args, stdin=None):
    return runner.invoke(app, list(args), input=stdin)


def test_summarize_table_has_cs231n_rows_and_totals():
    result = run("summarize", VGG16)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "224x224x64" in out and "(3*3*3)*64 = 1,728" in out
    assert "7*7*512*4096 = 102,760,448" in out
    assert "138,357,544" in out and "15,470,264,320" in out
    assert "15,246,800 per image" in out


def test_summarize_json_is_exact():
    result = run("summarize", VGG16, "--format", "json", "--batch", "8", "--optimizer", "adam")
    data = json.loads(result.stdout)
    assert data["totals"]["params"] == 138_357_544
    assert data["totals"]["macs"] == 15_470_264_320
    assert data["training_memory"]["optimizer"] == "adam"


def test_summarize_csv_and_markdown():
    csv_out = run("summarize", VGG16, "-f", "csv").stdout.splitlines()
    assert len(csv_out) == 41 and csv_out[1].startswith("0,INPUT,input,224x224x3")
    md = run("summarize", VGG16, "-f", "markdown").stdout
    assert md.startswith("| # | layer |") and "**total**" in md


def test_explain_shows_arithmetic():
    out = run("summarize", VGG16, "--explain").stdout
    assert "(224 - 3 + 2*1)/1 + 1 = 224" in out
    assert "(3*3*64)*128 = 73,728" in out


def test_max_memory_answers_last_with_the_unit_and_the_deciding_estimate():
    out = run("summarize", VGG16, "--max-memory", "4GB", "--optimizer", "adam").stdout
    answer = out.split("max memory", 1)[1]
    assert "4GB = 4,000,000,000 bytes = 3.7 GiB (GB = 10^9 bytes)" in answer
    assert "largest batch 14 by the notes' formula, which decides" in answer
    assert "training     batch 14, adam" in out  # the training line is at that batch
    assert "GiB = 2^30 bytes" in run("summarize", VGG16, "--max-memory", "4GiB").stdout
    data = json.loads(run("summarize", VGG16, "--max-memory", "4GB", "-f", "json").stdout)
    assert data["max_memory"]["largest_batch"] > 14  # sgd keeps no optimizer state
    assert data["training_memory"]["batch"] == data["max_memory"]["largest_batch"]
    assert data["max_memory"]["executor_largest_batch"] >= 1
    assert run("summarize", VGG16, "--max-memory", "4GB", "--batch", "2").exit_code == 2


def test_max_memory_says_when_not_one_image_fits():
    out = run("summarize", VGG16, "--max-memory", "100MiB").stdout
    assert "MiB = 2^20 bytes" in out and "not even one image fits" in out


def test_version():
    from cnnkit import __version__

    result = run("--version")
    assert result.exit_code == 0 and result.stdout == f"cnnkit {__version__}\n"


def test_input_and_rounding_options():
    result = run("summarize", "-", "--input", "10x10x3", "--rounding", "floor", "-f", "json",
                 stdin="INPUT -> CONV3-8(stride=2, pad=0)")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["layers"][1]["output"] == "4x4x8"


def test_check_exit_codes():
    assert run("check", VGG16).exit_code == 0
    bad = run("check", "-", stdin="INPUT 10x10x3 -> CONV3-8(stride=2, pad=0)")
    assert bad.exit_code == 1
    assert "<stdin>:1:18: error:" in bad.stderr and "^^^" in bad.stderr
    assert "4.5 is not an integer" in bad.stderr


def test_usage_errors_exit_2():
    assert run("summarize", "no/such/file.txt").exit_code == 2
    assert run("summarize", VGG16, "--dtype", "int3").exit_code == 2
    assert run("summarize", VGG16, "--max-memory", "lots").exit_code == 2
    assert run("summarize", VGG16, "--batch", "0").exit_code == 2
    assert run("frobnicate").exit_code == 2


LAYER_WORDS = ["CONV3-8", "CONV1-4(stride=2)", "POOL2", "AVGPOOL3(stride=1, pad=1)", "FC-10",
               "RELU", "BN", "GAP", "FLATTEN", "DROPOUT(0.5)", "RES[CONV3-4 | CONV1-4]",
               "CAT[ID | CONV3-2]", "[CONV3-4]*2", "LRN", "SOFTMAX", "blk", "CONV5-2(pad=same)"]
NOISE = list("[]()*|=@#-> x,\n") + ["->", "INPUT", "RES[", "CAT[", "]*", "*-1", "@rounding",
                                     "pad=", "stride=0", "999999999"]


@st.composite
def specs(draw):
    size = draw(st.integers(1, 40))
    layers = draw(st.lists(st.sampled_from(LAYER_WORDS), max_size=8))
    text = f"INPUT {size}x{size}x{draw(st.integers(1, 4))} -> " + " -> ".join(layers)
    if draw(st.booleans()):
        text += "\nblk = RELU"
    # mutate: insert, delete or replace a few characters
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(NOISE))
        if op == "insert":
            text = text[:pos] + piece + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1:]
        else:
            text = text[:pos] + piece + text[pos + len(piece):]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(specs(), st.text(max_size=60)))
def test_cli_never_ends_in_a_traceback(text):
    for command in (["check", "-"], ["summarize", "-", "-f", "json"]):
        result = runner.invoke(app, command, input=text)
        assert result.exit_code in (0, 1), (text, result.output, result.exception)
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit), (text, repr(result.exception))
        assert "Traceback" not in result.output


def test_messages_keep_square_brackets(tmp_path):
    """rich would read `[gpu]` as markup and drop it; messages are printed as plain text."""
    missing = str(tmp_path / "net[gpu].txt")
    result = run("check", missing)
    assert result.exit_code == 2 and "net[gpu].txt" in result.stderr


def test_summarize_loads_no_heavy_module():
    """Start-up is most of a summary's time: no NumPy, plotting, imaging or pydantic (which
    typer 0.29 would import at every command)."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnkit", "summarize",
                          "specs/lenet5.txt"], capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"numpy", "matplotlib", "PIL", "pydantic", "cupy"}
