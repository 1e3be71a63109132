"""`cnnkit summarize` and `cnnkit check`."""

from __future__ import annotations

import json
from enum import Enum

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..calculator import Summary, human_bytes, largest_batch, parse_bytes, short_count
from ..calculator.formats import to_csv, to_json, to_markdown
from ..calculator.summary import COUNTING_NOTE
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
    batch: int = typer.Option(1, min=1, help="Batch size for the training-memory estimate."),
    dtype: DType = typer.Option("float32", help="Number format for memory figures."),
    optimizer: Optimizer = typer.Option("sgd", help="Optimizer whose state is counted."),
    output_format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    explain: bool = typer.Option(False, "--explain", help="Show the arithmetic behind each row."),
    max_memory: str = typer.Option(
        None, help="Memory budget such as 4GB or 8GiB: report the largest batch that fits."),
) -> None:
    """Print the per-layer table: output volume, activations, weights, MACs, receptive field,
    and totals with a training-memory estimate."""
    with reported_errors():
        network = load_network(spec, input_shape, rounding)
    summary = network.summary(batch=batch, dtype=dtype.value, optimizer=optimizer.value)
    fit = None
    if max_memory is not None:
        try:
            limit = parse_bytes(max_memory)
        except ValueError as error:
            raise fail(str(error), EXIT_USAGE) from None
        fit = largest_batch(limit, lambda b: network.summary(
            batch=b, dtype=dtype.value, optimizer=optimizer.value).memory.total_bytes)
    if output_format is Format.json:
        if fit is not None:
            data = summary.to_dict()
            data["max_memory"] = {"limit_bytes": limit, "largest_batch": fit}
            typer.echo(json.dumps(data, indent=2))
        else:
            typer.echo(to_json(summary))
        return
    if output_format is Format.csv:
        typer.echo(to_csv(summary), nl=False)
        return
    if output_format is Format.markdown:
        typer.echo(to_markdown(summary), nl=False)
        return
    console.print(layer_table(summary, network.filename))
    if explain:
        print_explanations(summary)
    print_totals(summary)
    if fit is not None:
        verdict = (f"largest batch that fits in {max_memory}: [bold]{fit}[/]" if fit else
                   f"not even one image fits in {max_memory}")
        console.print(verdict)


def layer_table(summary: Summary, title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", show_footer=True,
                  footer_style="bold")
    columns = [("#", "right", ""), ("layer", "left", "total"), ("output", "left", ""),
               ("activations", "right", short_count(summary.activations)),
               ("weights", "right", f"{summary.weights:,}"),
               ("biases", "right", f"{summary.biases:,}"),
               ("BN", "right", f"{summary.other_params:,}"),
               ("MACs", "right", f"{summary.macs:,}"), ("RF", "right", "")]
    has_bn = summary.other_params > 0
    for name, justify, footer in columns:
        if name != "BN" or has_bn:
            table.add_column(name, justify=justify, footer=footer, no_wrap=name != "layer")
    for row in summary.rows:
        cells = [
            str(row.index), row.name, row.output,
            Text(short_count(row.activations), style="dim" if row.in_place else ""),
            row.weights_formula if row.weights else "0", f"{row.biases:,}",
            f"{row.other_params:,}", f"{row.macs:,}",
            f"{row.receptive_field[0]}x{row.receptive_field[1]}",
        ]
        if not has_bn:
            del cells[6]
        table.add_row(*cells)
    return table


def print_explanations(summary: Summary) -> None:
    console.print("\n[bold]How each number comes about[/]")
    for row in summary.rows:
        parts = list(row.explain)
        if row.weights:
            parts.append(f"weights {row.weights_formula}")
        if row.biases:
            parts.append(f"biases {row.biases:,}")
        if row.other_params:
            parts.append(f"BN {row.weights_formula or row.other_params}")
        if row.macs:
            parts.append(f"MACs {row.macs_formula}")
        shape = "*".join(map(str, row.shape)) if row.kind != "input" else ""
        if shape:
            parts.append(f"activations {shape} = {row.activations:,}"
                         + (" (in place)" if row.in_place else ""))
        if parts:
            console.print(f"[cyan]{row.index:>3} {row.name}[/]: " + "; ".join(parts))


def decimal(n: int) -> str:
    """15,470,264,320 -> "15.5 G": three significant digits with an SI prefix."""
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {prefix}"
    return str(n)


def print_totals(summary: Summary) -> None:
    m = summary.memory
    trainable = (f"weights {summary.weights:,} + biases {summary.biases:,}"
                 + (f" + BN {summary.other_params:,}" if summary.other_params else ""))
    lines = [
        f"[bold]parameters[/]   {summary.params:,} ({trainable})"
        + (f"; BN running statistics {summary.state:,} (state, not trained)"
           if summary.state else ""),
        f"[bold]MACs[/]         {summary.macs:,} per image ({decimal(summary.macs)})",
        f"[bold]activations[/]  {summary.activations:,} per image = "
        f"{human_bytes(summary.activation_bytes)} in {summary.dtype}",
        f"[bold]training[/]     batch {m.batch}, {m.optimizer}, {m.dtype}: "
        f"activations {human_bytes(m.activation_bytes)} + their gradients "
        f"{human_bytes(m.gradient_bytes)} + parameters/gradients/optimizer "
        f"{human_bytes(m.parameter_bytes)} = [bold]{human_bytes(m.total_bytes)}[/]",
        f"[bold]executor[/]     what cnnkit's engine holds at its peak for this batch: "
        f"{human_bytes(summary.executor_memory.total_bytes)} (kept activations "
        f"{human_bytes(summary.executor_memory.activation_bytes)}, gradients "
        f"{human_bytes(summary.executor_memory.gradient_bytes)}, im2col workspace "
        f"{human_bytes(summary.executor_memory.workspace_bytes)})",
        f"[dim]{COUNTING_NOTE}[/]",
    ]
    for line in lines:
        console.print(line, soft_wrap=False)


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
