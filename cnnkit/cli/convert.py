"""`cnnkit convert`: a run rewritten as an equivalent network (FC layers as CONV)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import EXIT_USAGE, app, fail


@app.command()
def convert(
    run: Path = typer.Argument(..., help="Run directory written by `cnnkit train`."),
    fc_to_conv: bool = typer.Option(False, "--fc-to-conv", help="Write every FC layer as the "
                                    "CONV it equals (CS231n), so the network slides over "
                                    "larger images: `cnnkit predict RUN2 big.png --slide`."),
    out: Path = typer.Option(..., "--out", "-o", help="The new run directory (must not exist)."),
) -> None:
    """A converted copy of a run: its spec rewritten, its weights reshaped to match, its
    configuration, normalization, classes and metrics kept.  At the trained input size
    the converted run's scores are the original's."""
    from ..training.convert import convert_run
    from ..training.rundir import RunError

    if not fc_to_conv:
        raise fail("say which conversion: --fc-to-conv", EXIT_USAGE)
    try:
        written = convert_run(run, out)
    except RunError as error:
        raise fail(str(error)) from None
    typer.echo(str(written))
