"""`cnnkit serve`: the playground in the browser.  The server (standard library only) is
imported inside the command, so other commands never load it."""

from __future__ import annotations

import typer

from .common import EXIT_USAGE, app, console, fail, read_spec, reported_errors


@app.command()
def serve(
    spec: str = typer.Argument(None, help="Spec file to open in the editor (default: a "
                               "link's spec, else VGG-16's first layers)."),
    port: int = typer.Option(8765, min=0, max=65535, help="Port (0: any free port)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; only this machine "
                             "can connect unless you give another (e.g. 0.0.0.0)."),
) -> None:
    """A page that recomputes the summary table, memory and network drawing as you type.

    JSON API for scripts: POST /api/summarize (the spec as the body; query batch,
    optimizer, dtype, rounding, format=json|csv|markdown) returns what `summarize --format`
    prints, or HTTP 422 with the error's line and column; POST /api/network.svg (or .png,
    query compact=1, vertical=1) returns the drawing.
    """
    text, name = "", ""
    if spec is not None:
        with reported_errors():
            text, name = read_spec(spec)
    from ..serve.server import make_server

    try:
        server = make_server(host, port, text, name)
    except OSError as error:
        raise fail(f"cannot listen on {host}:{port}: {error.strerror or error}",
                   EXIT_USAGE) from None
    console.print(f"cnnkit playground on {server.url}  (Ctrl-C stops it)", markup=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()
