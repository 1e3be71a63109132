"""`cnnkit import`: an ONNX model as a spec (and its weights, or a whole run directory), and
the reading of ``.onnx`` files that `summarize`, `check` and `visualize network` share.

onnx (and NumPy) are imported only when an ONNX file is read, so `cnnkit summarize
spec.txt` stays as quick as before.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import EXIT_USAGE, app, console, fail, reported_errors

INPUT_HELP = "Input shape HxWxC, for a model whose input size is dynamic (or to override it)."


ONNX_MAGIC = b"\x08"  # a model starts with field 1 (ir_version), a varint: tag byte 0x08


def looks_like_onnx(path: str) -> bool:
    """``*.onnx``, or a file that starts as a serialized ONNX model does (no spec starts
    with a control character)."""
    if path == "-" or path.lower().endswith(".txt"):
        return False
    if path.lower().endswith(".onnx"):
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(1) == ONNX_MAGIC
    except OSError:
        return False  # the spec reader reports it


def read_model(path: str, input_shape: str | None, use_embedded_spec: bool = True):
    """``from_onnx``, its errors as one line: exit 1 for a model cnnkit cannot read, 2 for a
    missing file."""
    with reported_errors():
        try:
            from ..interop.onnx_import import from_onnx
            from ..interop.onnx_load import OnnxImportError
        except ModuleNotFoundError as error:
            raise fail(f"reading ONNX needs the {error.name} package: "
                       "pip install 'cnnkit[onnx]'") from None
        try:
            return from_onnx(path, input_shape, use_embedded_spec=use_embedded_spec)
        except ModuleNotFoundError as error:
            raise fail(f"reading ONNX needs the {error.name} package: "
                       "pip install 'cnnkit[onnx]'") from None
        except OnnxImportError as error:
            raise fail(str(error)) from None


def _write_run(path: Path, imported, dataset: str) -> None:
    """A run directory as `cnnkit train` leaves one, the imported weights as both its
    initial and its final weights: `evaluate`, `predict`, `visualize` and `export` read it,
    and `train --resume` fine-tunes from the imported weights."""
    from ..training.config import TrainConfig
    from ..training.rundir import RunDirectory, save_arrays, write_atomic

    run = RunDirectory(path)
    if run.config.exists():
        raise fail(f"{path} already holds a run; choose another --run-dir", EXIT_USAGE)
    weights = imported.weights()
    dtype = str(next(iter(weights.values())).dtype) if weights else "float32"
    try:
        config = TrainConfig(dataset=dataset, dtype=dtype)
    except ValueError as error:
        raise fail(str(error), EXIT_USAGE) from None
    run.path.mkdir(parents=True, exist_ok=True)
    write_atomic(run.spec, imported.spec.encode())
    for target in (run.weights_init, run.weights_final):
        save_arrays(target, weights)
    write_atomic(run.config, config.to_json().encode())


@app.command(name="import")
def import_model(
    model: str = typer.Argument(..., help="ONNX model file (.onnx)."),
    out: Path = typer.Option(None, "--out", "-o", help="Spec file to write, with its weights "
                             "beside it as SPEC-NAME.npz (default: the spec on standard "
                             "output, no weights)."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Make a run directory (spec.txt, "
                                 "config.json, weights_init.npz, weights_final.npz) that "
                                 "evaluate, predict, visualize, export and train --resume "
                                 "take."),
    input_shape: str = typer.Option(None, "--input", help=INPUT_HELP),
    dataset: str = typer.Option("mnist", help="The run directory's dataset (what evaluate "
                                "and train --resume use unless told otherwise)."),
    from_graph: bool = typer.Option(False, "--from-graph", help="Read the operators even "
                                    "when the model carries the spec cnnkit exported it from."),
) -> None:
    """Write an ONNX model as a spec in cnnkit's language: residual sums as RES[ main |
    shortcut ], concatenations as CAT[ ... ], repeats folded into [ ... ]*N, a branch
    written more than once as a named block."""
    imported = read_model(model, input_shape, use_embedded_spec=not from_graph)
    from ..interop.onnx_load import OnnxImportError
    from ..training.rundir import RunError, save_arrays

    written = []
    try:
        if out is not None:
            out.write_text(imported.spec, encoding="utf-8")
            weights = out.with_suffix(".npz")
            save_arrays(weights, imported.weights())
            written += [out, weights]
        if run_dir is not None:
            _write_run(run_dir, imported, dataset)
            written.append(run_dir)
    except OnnxImportError as error:
        raise fail(str(error)) from None
    except (OSError, RunError) as error:
        raise fail(f"cannot write: {getattr(error, 'strerror', None) or error}") from None
    if not written:
        typer.echo(imported.spec, nl=False)
    for path in written:
        console.print(str(path), markup=False)
