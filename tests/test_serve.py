"""`cnnkit serve`'s API over real HTTP on 127.0.0.1: the same documents as the CLI, errors
with their position, and the limits (size, routes, host)."""

import http.client
import json
import threading
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.serve.server import MAX_BODY, make_server

runner = CliRunner()
SPEC = "INPUT 32x32x3 -> [CONV3-64 -> RELU]*2 -> POOL2 -> FC-10"


@pytest.fixture(scope="module")
def server():
    playground = make_server("127.0.0.1", 0, SPEC, "tiny.txt")
    thread = threading.Thread(target=playground.serve_forever, daemon=True)
    thread.start()
    yield playground
    playground.shutdown()
    playground.server_close()


def request(server, method, path, body=None, headers=None):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def test_summarize_is_exactly_the_cli_json(server):
    spec = open("specs/resnet50.txt").read()
    response, body = request(server, "POST", "/api/summarize?batch=32&optimizer=adam"
                             "&dtype=float16&rounding=floor", spec.encode())
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json; charset=utf-8"
    cli = runner.invoke(app, ["summarize", "specs/resnet50.txt", "--format", "json",
                              "--batch", "32", "--optimizer", "adam", "--dtype", "float16",
                              "--rounding", "floor"])
    assert cli.exit_code == 0
    assert body.decode() == cli.stdout
    assert json.loads(body)["training_memory"]["batch"] == 32


@pytest.mark.parametrize("fmt, content_type", [("csv", "text/csv"),
                                               ("markdown", "text/markdown")])
def test_the_table_in_the_cli_formats(server, fmt, content_type, tmp_path):
    response, body = request(server, "POST", f"/api/summarize?format={fmt}", SPEC.encode())
    assert response.getheader("Content-Type").startswith(content_type)
    (tmp_path / "s.txt").write_text(SPEC)
    cli = runner.invoke(app, ["summarize", str(tmp_path / "s.txt"), "--format", fmt])
    assert body.decode() == cli.stdout


def test_a_spec_error_is_422_with_its_position_and_hint(server):
    spec = "INPUT 32x32x3\n-> CONV3-64 -> FCC-10"
    response, body = request(server, "POST", "/api/summarize", spec.encode())
    assert response.status == 422
    error = json.loads(body)["error"]
    assert error == {"message": "unknown layer `FCC-10`", "line": 2, "column": 16,
                     "end_column": 22, "hint": "did you mean `FC-10`?"}
    assert spec.split("\n")[1][15:21] == "FCC-10"


def test_bad_queries_are_400(server):
    for query in ("batch=0", "batch=x", "dtype=int8", "optimizer=lbfgs", "rounding=up",
                  "format=xml"):
        response, body = request(server, "POST", f"/api/summarize?{query}", SPEC.encode())
        assert response.status == 400, query
        assert json.loads(body)["error"]["message"]


def test_the_drawing_is_svg_or_png(server):
    response, body = request(server, "POST", "/api/network.svg?compact=1&vertical=1",
                             open("specs/resnet50.txt").read().encode())
    assert response.status == 200
    assert response.getheader("Content-Type") == "image/svg+xml; charset=utf-8"
    text = "".join(ET.fromstring(body).itertext())
    assert "bottleneck256" in text and "x 5" in text and "14x14x1024" in text
    response, body = request(server, "POST", "/api/network.png", SPEC.encode())
    assert response.getheader("Content-Type") == "image/png"
    assert body.startswith(b"\x89PNG")


def test_request_size_is_bounded(server):
    response, body = request(server, "POST", "/api/summarize", b"#" * (MAX_BODY + 1))
    assert response.status == 413 and "at most" in json.loads(body)["error"]["message"]
    response, _ = request(server, "POST", "/api/summarize", b"\xff\xfe")
    assert response.status == 400


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/static/../server.py", "/%2e%2e/etc",
                                  "/api/examples/../../pyproject", "/api/examples/",
                                  "/server.py", "/index.html/..", "//etc/passwd"])
def test_no_path_reaches_the_file_system(server, path):
    response, body = request(server, "GET", path)
    assert response.status == 404
    assert b"[tool" not in body and b"import" not in body


def test_pages_examples_and_start(server):
    for path, kind in [("/", "text/html"), ("/app.js", "text/javascript"),
                       ("/style.css", "text/css")]:
        response, _ = request(server, "GET", path)
        assert response.status == 200 and response.getheader("Content-Type").startswith(kind)
        assert response.getheader("X-Content-Type-Options") == "nosniff"
    _, body = request(server, "GET", "/api/start")
    start = json.loads(body)
    assert start["spec"] == SPEC and "resnet50" in start["examples"]
    _, body = request(server, "GET", "/api/examples/vgg16")
    assert body.decode() == open("specs/vgg16.txt").read()


def test_other_hosts_and_methods_are_refused(server):
    response, _ = request(server, "GET", "/api/start", headers={"Host": "evil.example:80"})
    assert response.status == 421
    response, _ = request(server, "PUT", "/api/summarize", SPEC.encode())
    assert response.status == 501
    response, _ = request(server, "POST", "/api/nothing", SPEC.encode())
    assert response.status == 404


def test_serve_listens_on_loopback_by_default(monkeypatch):
    from cnnkit.serve import server as module

    seen = {}

    class Stub:
        url = "http://127.0.0.1:8765/"

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            seen["closed"] = True

    def fake(host, port, spec, name):
        seen.update(host=host, port=port, spec=spec)
        return Stub()

    monkeypatch.setattr(module, "make_server", fake)
    result = runner.invoke(app, ["serve", "specs/lenet5.txt"])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8765 and seen["closed"]
    assert "http://127.0.0.1:8765/" in result.stdout
    assert seen["spec"] == open("specs/lenet5.txt").read()


def test_an_installed_wheel_carries_the_examples_and_the_page(tmp_path):
    """The playground's example menu and page come from package data: a wheel built from
    the sources holds every example spec (the menu was empty where cnnkit was installed
    from a wheel, the specs lying outside the package) and the page's assets."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    pytest.importorskip("setuptools")
    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    shutil.copytree(root / "cnnkit", source / "cnnkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("cnnkit-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    examples = sorted((root / "cnnkit" / "specs").glob("*.txt"))
    assert len(examples) > 10
    assert {f"cnnkit/specs/{path.name}" for path in examples} <= shipped
    assert {f"cnnkit/serve/static/{name}" for name in ("index.html", "app.js", "style.css")} \
        <= shipped
