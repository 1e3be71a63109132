"""`cnnkit export`: a run's or a spec's network as an ONNX model or PyTorch source.

A thin shell over ``cnnkit.interop``; onnx is imported only when an ONNX export runs, and
the PyTorch export needs no torch at all.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ..graph.build import parse
from .common import EXIT_USAGE, DType, app, console, fail, read_spec, reported_errors


class Target(str, Enum):
    onnx = "onnx"
    pytorch = "pytorch"


class Weights(str, Enum):
    final = "final"
    init = "init"


EXPORT_DTYPES = ("float32", "float64")


def _from_run(path: Path, which: str):
    """(network, weights, description) of a run directory."""
    from ..training.predict import load_run

    trained = load_run(path, which=which)
    description = f"Weights: {which} weights of the run {path}."
    if trained.normalization is not None:
        mean, std = (", ".join(f"{v:.6g}" for v in a) for a in trained.normalization)
        description += (f" Inputs as in training: pixels / 255, then (x - mean) / std per "
                        f"channel, mean ({mean}), std ({std}).")
    else:
        description += " Inputs as in training: pixels / 255."
    return trained.network, trained.model.state_dict(), description


def _from_spec(spec: str, input_shape: str | None, seed: int):
    from ..engine.model import Model

    with reported_errors():
        text, name = read_spec(spec)
        network = parse(text, filename=name, input_shape=input_shape)
    weights = Model(network, dtype="float64", seed=seed).state_dict()
    return network, weights, f"Weights: cnnkit's initialization with seed {seed}."


@app.command()
def export(
    source: str = typer.Argument(..., help="A run directory (its trained weights) or a spec "
                                 "file (initial weights from --seed; `-` reads standard input)."),
    to: Target = typer.Option(..., "--to", help="onnx: an ONNX model (opset 17); pytorch: "
                              "Python source of an nn.Module plus an .npz of its weights."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write (model.onnx, model.py)."),
    seed: int = typer.Option(0, help="Seed of the initial weights, for a spec."),
    dtype: DType = typer.Option("float32", help="float32 or float64 weights and input."),
    batch: int = typer.Option(None, min=1, help="Fixed batch size of the ONNX input "
                              "(default: dynamic)."),
    input_shape: str = typer.Option(None, "--input", help="Input shape HxWxC, for a spec."),
    weights: Weights = typer.Option(Weights.final, help="A run's final or initial weights."),
) -> None:
    """Write a network with its weights for other frameworks: ONNX (onnxruntime, TensorRT,
    ...) or readable PyTorch source.  Inputs are NCHW."""
    from ..interop import ExportError
    from ..training.rundir import RunError

    if dtype.value not in EXPORT_DTYPES:
        raise fail(f"--dtype must be float32 or float64 for an export, not {dtype.value}",
                   EXIT_USAGE)
    if batch is not None and to is not Target.onnx:
        raise fail("--batch applies to ONNX exports only", EXIT_USAGE)
    is_run = source != "-" and Path(source).is_dir()
    if is_run and input_shape:
        raise fail("--input applies to a spec, not a run (its input is the trained one)",
                   EXIT_USAGE)
    try:
        if is_run:
            network, state, description = _from_run(Path(source), weights.value)
        else:
            network, state, description = _from_spec(source, input_shape, seed)
        if to is Target.onnx:
            from ..interop import to_onnx

            to_onnx(network, state, out, dtype=dtype.value, batch=batch, description=description)
            written = [out]
        else:
            from ..interop import to_pytorch

            written = list(to_pytorch(network, state, out, dtype=dtype.value))
    except ModuleNotFoundError as error:
        raise fail(f"the ONNX export needs the {error.name} package: "
                   "pip install 'cnnkit[onnx]'") from None
    except (ExportError, RunError) as error:
        raise fail(str(error)) from None
    except OSError as error:
        raise fail(f"cannot write {error.filename or out}: {error.strerror or error}") from None
    for path in written:
        console.print(str(path), markup=False)
