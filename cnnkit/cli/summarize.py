"""`cnnkit summarize` and `cnnkit check`."""

from __future__ import annotations

import json
from enum import Enum

import typer
from rich.markup import escape

from ..calculator import parse_bytes
from ..calculator.formats import to_csv, to_markdown
from ..calculator.render import SummaryView
from ..calculator.summary import fit_batch
from ..graph.build import parse
from .common import (
    EXIT_USAGE,
    DType,
    Optimizer,
    Rounding,
    app,
    console,
    fail,
    read_spec,
    reported_errors,
)
from .import_ import looks_like_onnx, read_model


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


SPEC_HELP = ("Spec file in the cnnkit layer language (`-` reads standard input), or an "
             "ONNX model (.onnx), read as `cnnkit import` reads it.")
INPUT_HELP = "Input shape HxWxC (e.g. 32x32x3); fills in or overrides the spec's INPUT."
ROUNDING_HELP = "How non-integer output sizes are treated; overrides the file's @rounding."


def load_network(spec: str, input_shape: str | None, rounding: Rounding | None):
    """The network of a spec file, or of an ONNX model (detected before any parsing)."""
    if looks_like_onnx(spec):
        if rounding is not None:
            raise fail("--rounding applies to specs; an ONNX model's sizes are its own",
                       EXIT_USAGE)
        return read_model(spec, input_shape).network
    text, name = read_spec(spec)
    return parse(text, filename=name, input_shape=input_shape,
                 rounding=rounding.value if rounding else None)


@app.command()
def summarize(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    input_shape: str = typer.Option(None, "--input", help=INPUT_HELP),
    rounding: Rounding = typer.Option(None, help=ROUNDING_HELP),
    batch: int = typer.Option(None, min=1, show_default="1",
                              help="Batch size for the training-memory estimate."),
    dtype: DType = typer.Option("float32", help="Number format for memory figures."),
    optimizer: Optimizer = typer.Option("sgd", help="Optimizer whose state is counted."),
    output_format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    explain: bool = typer.Option(False, "--explain",
                                 help="Show the arithmetic behind each row, and the legend."),
    legend: bool = typer.Option(False, "--legend", help="Say after the totals what is counted."),
    max_memory: str = typer.Option(
        None, help="Memory budget: 4GB (10^9 bytes), 4GiB (2^30), 512MB or 512MiB. Shows the "
        "largest training batch that fits, and the training memory at that batch."),
) -> None:
    """Print the per-layer table: output volume, activations, weights, MACs, receptive field,
    and totals with a training-memory estimate."""
    with reported_errors():
        network = load_network(spec, input_shape, rounding)
    fit = None
    if max_memory is not None:
        if batch is not None:
            raise fail("give --batch or --max-memory, not both: --max-memory finds the batch",
                       EXIT_USAGE)
        try:
            limit = parse_bytes(max_memory)
        except ValueError as error:
            raise fail(str(error), EXIT_USAGE) from None
        fit = fit_batch(network, limit, dtype=dtype.value, optimizer=optimizer.value)
        batch = fit.formula_batch
    summary = network.summary(batch=batch or 1, dtype=dtype.value, optimizer=optimizer.value)
    if output_format is Format.json:
        data = summary.to_dict()
        if fit is not None:
            data["max_memory"] = fit.to_dict()
        typer.echo(json.dumps(data, indent=2))
    elif output_format is Format.csv:
        typer.echo(to_csv(summary), nl=False)
    elif output_format is Format.markdown:
        typer.echo(to_markdown(summary), nl=False)
    else:
        console.print(SummaryView(summary, fit=fit, limit_text=max_memory or "", explain=explain,
                                  legend=legend or explain))


@app.command()
def check(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    input_shape: str = typer.Option(None, "--input", help=INPUT_HELP),
    rounding: Rounding = typer.Option(None, help=ROUNDING_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success."),
) -> None:
    """Validate a spec: exit 0 if every shape works out, 1 (with the reason) if not."""
    with reported_errors():
        network = load_network(spec, input_shape, rounding)
    if not quiet:
        console.print(f"{escape(network.filename)}: ok, {len(network.nodes)} layers, "
                      f"{network.input_shape} -> {network.output_shape}")
