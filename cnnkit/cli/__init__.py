"""The `cnnkit` command: a thin shell over the Python API.

Exit codes: 0 ok, 1 invalid spec (or data/run problem), 2 usage error.
"""

from __future__ import annotations

import os
import sys

import typer

from . import convert, export, import_, serve, summarize, sweep, train, visualize  # noqa: F401,E402  (registers the commands)
from .common import app


def main() -> None:
    """Entry point: run the app and turn unexpected failures into one clear line."""
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - last line of defence against tracebacks
        if os.environ.get("CNNKIT_DEBUG"):
            raise
        print(f"cnnkit: internal error: {type(error).__name__}: {error}\n"
              "Set CNNKIT_DEBUG=1 to see the traceback, and please report it.", file=sys.stderr)
        sys.exit(3)


__all__ = ["app", "main", "typer"]
