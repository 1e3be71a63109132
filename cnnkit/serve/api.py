"""The playground's computations, as plain functions from the request's text and query to a
response: the summary exactly as `summarize --format json|csv|markdown` prints it (the same
functions), the drawing as `visualize network` draws it, and spec errors as JSON with
their position."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass

from ..calculator.formats import to_csv, to_json, to_markdown
from ..calculator.memory import DTYPE_BYTES, OPTIMIZER_SLOTS
from ..graph.build import parse
from ..graph.sizes import ROUNDINGS
from ..language.errors import SpecError

SPEC_NAME = "<playground>"
FORMATS = {"json": ("application/json", lambda s: to_json(s) + "\n"),
           "csv": ("text/csv", to_csv), "markdown": ("text/markdown", to_markdown)}
MAX_BATCH = 10**9
# matplotlib shares font caches between figures: one drawing at a time
DRAWING = threading.Lock()


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes


class BadRequest(ValueError):
    """A query the API does not understand (HTTP 400)."""


def json_response(status: int, document: dict) -> Response:
    return Response(status, "application/json", (json.dumps(document) + "\n").encode())


def error_response(status: int, message: str) -> Response:
    return json_response(status, {"error": {"message": message, "line": None, "column": None,
                                            "end_column": None, "hint": None}})


def spec_error(error: SpecError) -> Response:
    """HTTP 422 with where the error is: ``end_column`` is one past the last marked column
    (the caret `check` prints, kept within the line)."""
    line = column = end = None
    if error.span is not None:
        line, column = error.span.line, error.span.col
        lines = error.source.split("\n")
        text = lines[line - 1].rstrip("\r") if line <= len(lines) else ""
        end = column + max(1, min(error.span.length, len(text) - column + 1))
    return json_response(422, {"error": {"message": error.message, "line": line,
                                         "column": column, "end_column": end,
                                         "hint": error.hint}})


def choice(query: dict, name: str, allowed, default: str) -> str:
    value = query.get(name, default)
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    return value


def flag(query: dict, name: str) -> bool:
    return choice(query, name, ("0", "1", "true", "false"), "0") in ("1", "true")


def network_of(text: str, query: dict):
    rounding = query.get("rounding") or None
    if rounding is not None and rounding not in ROUNDINGS:
        raise BadRequest(f"rounding must be one of {', '.join(ROUNDINGS)}")
    return parse(text, filename=SPEC_NAME, rounding=rounding)


def summarize(text: str, query: dict) -> Response:
    """POST /api/summarize: the document of `summarize --format FORMAT`."""
    try:
        batch = int(query.get("batch", "1"))
    except ValueError:
        raise BadRequest("batch must be a whole number") from None
    if not 1 <= batch <= MAX_BATCH:
        raise BadRequest(f"batch must be between 1 and {MAX_BATCH:,}")
    dtype = choice(query, "dtype", DTYPE_BYTES, "float32")
    optimizer = choice(query, "optimizer", OPTIMIZER_SLOTS, "sgd")
    content_type, render = FORMATS[choice(query, "format", FORMATS, "json")]
    network = network_of(text, query)
    summary = network.summary(batch=batch, dtype=dtype, optimizer=optimizer)
    return Response(200, content_type, render(summary).encode())


def drawing(text: str, query: dict, kind: str) -> Response:
    """POST /api/network.svg or .png: the picture `visualize network` draws."""
    from ..viz.network import network_figure
    from ..viz.output import write_figure

    compact, vertical = flag(query, "compact"), flag(query, "vertical")
    network = network_of(text, query)
    buffer = io.BytesIO()
    with DRAWING:
        write_figure(network_figure(network, title="", compact=compact, vertical=vertical),
                     buffer, kind)
    return Response(200, "image/svg+xml" if kind == "svg" else "image/png", buffer.getvalue())
