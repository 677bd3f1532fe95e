"""Real HTTP servers on loopback for the browser tests, and a small web site to browse.

Every server binds 127.0.0.1 on a free port. Host names other than 127.0.0.1 are resolved
by an injected resolver (never real DNS): `localhost` -> 127.0.0.1 plays a second site, and
names mapped to forbidden addresses are refused before any connection.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tools.browser.fetch import Fetcher, FetchLimits, HttpxHop
from tools.browser.guard import EgressGuard


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]
App = Callable[[Request], Reply]


class Server:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers with `app`."""

    def __init__(self, app: App) -> None:
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                server.requests.append(request)
                status, headers, body = app(request)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading on purpose (size limit, timeout)

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[App], Server]]:
    """Start servers with `serve(app)`; all are stopped after the test."""
    servers: list[Server] = []

    def start(app: App) -> Server:
        servers.append(Server(app))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def json_reply(data: object, status: int = 200) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


CAFE_CP1252 = (
    "Le café du coin sert un crème brûlée délicieux. Déjà vu, à la carte, naïve façade. " * 4
).encode("cp1252")


PANGRAM_RU = (
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Широкая электрификация "
    "южных губерний даст мощный толчок подъёму сельского хозяйства. "
) * 2


def _html(title: str, body: str) -> bytes:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>".encode()


def site_app(port_holder: dict[str, int]) -> App:
    """The test web site. `port_holder["port"]` is filled in once the server is up."""
    hits: dict[str, int] = {}

    def app(request: Request) -> Reply:
        path = request.path
        hits[path] = hits.get(path, 0) + 1
        port = port_holder["port"]
        html = {"Content-Type": "text/html; charset=utf-8"}
        if path == "/index.html":
            body = (
                "<h1>Welcome</h1><p>Read the <a href='/long.html'>long page</a> or the "
                f"<a href='http://localhost:{port}/other.html'>other site</a>.</p>"
                "<img src='/cat.png' alt='A cat'>"
            )
            return 200, html, _html("Index", body)
        if path == "/other.html":
            return 200, html, _html("Other", "<p>The other site. Back to <a href='/'>home</a>.</p>")
        if path == "/long.html":
            paras = "".join(
                f"<p>Paragraph {i}: the quick brown fox jumps over the lazy dog.</p>"
                for i in range(400)
            )
            return 200, html, _html("Long", paras + "<p>The Needle is here.</p>")
        if path == "/redirect":
            return 302, {"Location": "/index.html"}, b""
        if path.startswith("/chain/"):
            return 302, {"Location": f"/chain/{int(path.rsplit('/', 1)[1]) + 1}"}, b""
        if path == "/to-metadata":
            return 302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""
        if path == "/to-internal":
            return 302, {"Location": "http://internal.test/admin"}, b""
        if path == "/to-loopback":
            return 302, {"Location": f"http://127.0.0.2:{port}/index.html"}, b""
        if path == "/slow":
            time.sleep(3)
            return 200, html, _html("Slow", "<p>finally</p>")
        if path == "/huge":
            return 200, {"Content-Type": "text/plain"}, b"x" * 3_000_000
        if path == "/binary":
            return 200, {"Content-Type": "application/octet-stream"}, bytes(range(256)) * 8
        if path == "/mislabelled":
            meta = b"<meta charset='windows-1252'>"
            body = b"<html><head>" + meta + b"<title>Caf\xe9</title></head><body><p>"
            return 200, html, body + CAFE_CP1252 + b"</p></body></html>"
        if path == "/utf8-as-latin1":
            body = _html("Grüße", "<p>Grüße aus Köln, schöne Straße.</p>")
            return 200, {"Content-Type": "text/html; charset=iso-8859-1"}, body
        if path == "/undeclared.txt":
            return 200, {"Content-Type": "text/plain"}, PANGRAM_RU.encode("koi8_r")
        if path == "/doc.pdf":
            return 200, {"Content-Type": "application/pdf"}, minimal_pdf("Hello PDF world")
        if path == "/data.json":
            return json_reply({"name": "oss-agent", "tools": ["browser", "python"]})
        if path == "/notes.txt":
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, b"first note\nsecond note"
        if path == "/flaky":
            if hits[path] == 1:
                return 503, {"Retry-After": "0"}, b"busy"
            return 200, html, _html("Flaky", "<p>recovered</p>")
        if path == "/down":
            return 503, {}, b"down"
        if path == "/rate-limited":
            return 429, {"Retry-After": "3600"}, b"slow down"
        return 404, html, _html("Not found", "<p>nothing here</p>")

    return app


def fake_dns(table: dict[str, list[str]]):
    """A resolver answering from `table` only, so no test ever asks real DNS."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the test DNS table")
        return table[host]

    return resolve


TEST_DNS = {
    "localhost": ["127.0.0.1"],
    "internal.test": ["10.0.0.5"],
    "site.test": ["127.0.0.1"],
}


class RecordingHop(HttpxHop):
    """The real httpx hop, recording which addresses it was asked to connect to."""

    def __init__(self) -> None:
        super().__init__()
        self.connected: list[str] = []

    async def __call__(self, url, ip, **kwargs):
        self.connected.append(ip)
        return await super().__call__(url, ip, **kwargs)


@pytest.fixture
def make_resolver():
    """`make_resolver(extra)`: a resolver for TEST_DNS plus `extra` names; never real DNS."""
    return lambda extra=None: fake_dns({**TEST_DNS, **(extra or {})})


@pytest.fixture
def site(serve) -> Server:
    holder: dict[str, int] = {}
    server = serve(site_app(holder))
    holder["port"] = server.port
    return server


@pytest.fixture
def test_guard() -> EgressGuard:
    """Only 127.0.0.1 is allowed; names resolve through TEST_DNS."""
    return EgressGuard(allow_networks=["127.0.0.1/32"], resolver=fake_dns(TEST_DNS))


@pytest.fixture
def make_fetcher(test_guard):
    """Fetchers with test limits over a recording hop; closed after the test."""
    fetchers: list[Fetcher] = []

    def make(**limits) -> Fetcher:
        defaults = {"timeout": 1.0, "max_bytes": 100_000, "max_redirects": 3, "backoff": 0.01}
        hop = RecordingHop()
        fetchers.append(Fetcher(test_guard, FetchLimits(**(defaults | limits)), hop))
        return fetchers[-1]

    yield make
    import asyncio

    async def close_all() -> None:
        for fetcher in fetchers:
            await fetcher.aclose()

    asyncio.run(close_all())
