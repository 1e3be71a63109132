"""examples/seeds.ipynb runs from top to bottom, offline, so that it never goes stale."""

import time
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="executing the notebook needs nbclient "
                               "and ipykernel (pip install -e '.[test]')")
nbformat = pytest.importorskip("nbformat", reason="nbclient brings nbformat")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_seeds_notebook_executes():
    notebook = nbformat.read(EXAMPLES / "seeds.ipynb", as_version=4)
    started = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    html = outputs[0]["data"]["text/html"]  # the VGG-16 network, as a table
    assert html.startswith("<table>") and "138,344,128" in html
    text = "".join(output.get("text", "") for output in outputs)
    assert "is not an integer" in text and "55x55x96" in text
    assert "direct 120,422,400 MACs, with the bottleneck 12,443,648" in text
    assert "test accuracy" in text
    assert "image/png" in outputs[-1]["data"]  # the filters before and after
    assert time.perf_counter() - started < 60
