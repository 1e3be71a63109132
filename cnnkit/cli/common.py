"""Shared pieces of the CLI: the app, consoles, and the mapping from errors to exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
from enum import Enum

import typer
from rich.console import Console
from rich.text import Text

from ..calculator.memory import DTYPE_BYTES, OPTIMIZER_SLOTS
from ..graph.build import read_source
from ..graph.sizes import ROUNDINGS
from ..language.errors import SpecError
from ..training.config import DEVICES

app = typer.Typer(
    name="cnnkit",
    help="Write down a convolutional network in CS231n notation, see exactly what it costs, "
    "train it and look inside it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from .. import __version__

        print(f"cnnkit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", is_eager=True,
                                          callback=_print_version,
                                          help="Print cnnkit's version and exit.")) -> None:
    """Options before the command (the app's help text is its own)."""


# Piped output is not cut to 80 columns: tables stay one row per layer for grep and less,
# unless COLUMNS asks for a width.
console = Console(highlight=False)
if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
    console = Console(highlight=False, width=200)
errors = Console(stderr=True, highlight=False)

EXIT_INVALID = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_INVALID) -> typer.Exit:
    errors.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def reported_errors():
    """Turn the errors a user can cause into messages and exit codes, never tracebacks."""
    try:
        yield
    except SpecError as error:
        errors.print(error.render(), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    except FileNotFoundError as error:
        raise fail(f"no such file: {error.filename}", EXIT_USAGE) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise fail(f"cannot read the spec: {error}", EXIT_USAGE) from None


class DownloadBar:
    """``on_progress`` for dataset downloads: a transfer bar per file on a terminal, one
    line per file on the error stream otherwise.  ``close`` (or leaving a ``with`` block)
    takes the bars away."""

    def __init__(self):
        self.progress = None
        self.tasks: dict[str, object] = {}

    def __call__(self, filename: str, done: int, total: int | None) -> None:
        if not console.is_terminal:
            if done == 0:
                size = f" ({total / 1e6:,.0f} MB)" if total else ""
                errors.print(f"downloading {filename}{size}", markup=False)
            return
        if self.progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(
                TextColumn("downloading {task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True)
            self.progress.start()
        if filename not in self.tasks:
            self.tasks[filename] = self.progress.add_task(filename, total=total)
        self.progress.update(self.tasks[filename], completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress, self.tasks = None, {}

    def __enter__(self) -> DownloadBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_spec(path: str) -> tuple[str, str]:
    """The spec text and a display name; ``-`` reads standard input."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    return read_source(path), path


def choices(name: str, values) -> type[Enum]:
    """A str Enum for typer from the values the API accepts, so the two never drift apart."""
    return Enum(name, {value: value for value in values}, type=str)


Optimizer = choices("Optimizer", OPTIMIZER_SLOTS)
DType = choices("DType", DTYPE_BYTES)
Rounding = choices("Rounding", ROUNDINGS)
Device = choices("Device", DEVICES)
