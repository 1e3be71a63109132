"""The playground's HTTP server: a fixed table of routes over the standard library's
ThreadingHTTPServer.

No request names a file: the page's three assets and the example specs are read from fixed
paths chosen when the server starts, so no path from a request reaches the file system.
Bodies are capped at ``MAX_BODY`` bytes (the parser refuses specs over 128 K characters in
well under a second), a client that stalls is dropped after ``TIMEOUT`` seconds, and the
``Host`` header must name this server when it listens on loopback (a web page elsewhere
cannot reach it through DNS rebinding).
"""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ..calculator.memory import DTYPE_BYTES, OPTIMIZER_SLOTS
from ..graph.sizes import ROUNDINGS
from ..language.errors import SpecError
from ..viz import VizError
from . import api

MAX_BODY = 256 * 1024
TIMEOUT = 10.0  # seconds a client may take to send its request
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ASSETS = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript"),
          "/style.css": ("style.css", "text/css")}
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "specs"  # shipped in the package
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "object-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def read_assets() -> dict[str, tuple[bytes, str]]:
    static = resources.files("cnnkit.serve") / "static"
    return {route: (static.joinpath(name).read_bytes(), kind)
            for route, (name, kind) in ASSETS.items()}


def read_examples(folder: Path = EXAMPLES_DIR) -> dict[str, str]:
    """The example specs by name ("vgg16"), read once; none where the folder is missing."""
    if not folder.is_dir():
        return {}
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.txt"))}


class Playground(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], spec: str = "", spec_name: str = "",
                 examples: dict[str, str] | None = None):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.assets = read_assets()
        self.examples = read_examples() if examples is None else examples
        self.start = json.dumps({
            "spec": spec, "name": spec_name, "examples": list(self.examples),
            "dtypes": list(DTYPE_BYTES), "optimizers": list(OPTIMIZER_SLOTS),
            "roundings": list(ROUNDINGS)}).encode()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: Playground
    timeout = TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "cnnkit"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        """Quiet: the terminal shows the address, not every keystroke's request."""

    def do_GET(self) -> None:
        if not self.host_allowed():
            return
        path = urlsplit(self.path).path
        if path in self.server.assets:
            body, kind = self.server.assets[path]
            self.reply(api.Response(200, kind, body))
        elif path == "/api/start":
            self.reply(api.Response(200, "application/json", self.server.start))
        elif path.removeprefix("/api/examples/") in self.server.examples:
            example = self.server.examples[path.removeprefix("/api/examples/")]
            self.reply(api.Response(200, "text/plain", example.encode()))
        else:
            self.reply(api.error_response(404, "no such page"))

    def do_POST(self) -> None:
        if not self.host_allowed():
            return
        url = urlsplit(self.path)
        routes = {"/api/summarize": api.summarize,
                  "/api/network.svg": lambda text, q: api.drawing(text, q, "svg"),
                  "/api/network.png": lambda text, q: api.drawing(text, q, "png")}
        if url.path not in routes:
            self.reply(api.error_response(404, "no such API"))
            return
        text = self.read_body()
        if text is None:
            return
        try:
            query = dict(parse_qsl(url.query, max_num_fields=20))
            response = routes[url.path](text, query)
        except SpecError as error:
            response = api.spec_error(error)
        except VizError as error:
            response = api.error_response(422, str(error))
        except api.BadRequest as error:
            response = api.error_response(400, str(error))
        except Exception as error:  # noqa: BLE001 - a reply, never a dropped connection
            response = api.error_response(500, f"internal error: {type(error).__name__}: {error}")
        self.reply(response)

    def read_body(self) -> str | None:
        """The request's text, or None after replying why there is none to read."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.reply(api.error_response(411, "send the spec with a Content-Length"))
            return None
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True  # the rest of an oversized body is never read
            self.reply(api.error_response(413, f"a spec may have at most {MAX_BODY:,} bytes"))
            return None
        try:
            return self.rfile.read(length).decode("utf-8")
        except UnicodeDecodeError:
            self.reply(api.error_response(400, "the spec is not UTF-8 text"))
            return None

    def host_allowed(self) -> bool:
        """On loopback, only requests addressed to this server by name or address."""
        host, port = self.server.server_address[:2]
        if host not in LOOPBACK:
            return True
        given = (self.headers.get("Host") or "").lower()
        if given in {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}:
            return True
        self.reply(api.error_response(421, "this server answers to 127.0.0.1 and localhost"))
        return False

    def reply(self, response: api.Response) -> None:
        text = response.content_type.startswith(("text/", "application/json", "image/svg"))
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type
                         + ("; charset=utf-8" if text else ""))
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)


def make_server(host: str = "127.0.0.1", port: int = 8765, spec: str = "",
                spec_name: str = "") -> Playground:
    """A playground listening on ``host:port`` (port 0: any free port); not yet serving."""
    return Playground((host, port), spec, spec_name)
