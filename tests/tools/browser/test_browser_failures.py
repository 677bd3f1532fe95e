"""The browser tool never raises: every hostile URL, redirect or server answers the model
with a tool message saying what went wrong (real loopback servers, the real tool)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from urllib.parse import quote

import pytest

from agent.harmony import Message, Role
from tools.browser import BrowserTool, LocalIndex

# Redirect targets an attacker's page can send; none may be fetched, none may raise.
HOSTILE_LOCATIONS = [
    "data:text/html,<h1>hi</h1>",
    "javascript:alert(1)",
    "about:blank",
    "mailto:someone@example.com",
    "file:///etc/passwd",
    "ftp://example.com/file",
    "gopher://example.com/",
    "ws://example.com/socket",
    "view-source:http://example.com/",
    "blob:http://example.com/1",
    "http://[::1",
    "http://[zz::]/",
    "http://exa mple.test/",
    "http://:80/",
    "http://127.0.0.1:99999/",
    "http://127.0.0.1:0/",
    "http://%00/",
    "http://xn--/",
    "http://a..b/",
    "http://" + "a" * 300 + ".test/",
    "http://user:pass@",
    "https://",
    " ",
    "http://internal.test/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.2]/",
]

# URLs the model may pass to browser.open directly.
HOSTILE_OPENS = [
    *HOSTILE_LOCATIONS,
    "",
    "   ",
    "http://",
    "http:///no-host",
    "\\\\host\\share",
    "127.0.0.1:99999",
    "https://[::1]:x/",
]


def _garbage_server(reply: bytes):
    """A TCP server on loopback that answers every connection with `reply` and hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return listener


def hostile_app(request):
    if request.path == "/to":
        return 302, {"Location": request.query["loc"][0]}, b""
    if request.path == "/no-location":
        return 302, {}, b""
    if request.path == "/loop":
        return 302, {"Location": "/loop"}, b""
    if request.path == "/bad-gzip":
        return 200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, b"not gzip"
    if request.path == "/bad-charset":
        return 200, {"Content-Type": "text/html; charset=no-such-charset"}, b"<p>caf\xe9</p>"
    if request.path == "/bad-pdf":
        return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.4\n1 0 obj <<>>\ntrailer<<>>"
    if request.path == "/bad-json":
        return 200, {"Content-Type": "application/json"}, b'{"a": [1, 2'
    if request.path == "/odd-status":
        return 799, {"Content-Type": "text/html"}, b"<p>odd</p>"
    if request.path == "/deep-html":
        return 200, {"Content-Type": "text/html"}, b"<div>" * 50_000 + b"deep"
    if request.path == "/controls":
        body = b"<title>\x1b]0;pwned\x07</title><p>\x1b[2Jclear\x9b31m \xe2\x80\xae</p>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body
    return 404, {}, b""


@pytest.fixture
def hostile(serve):
    return serve(hostile_app)


@pytest.fixture
def browser(make_fetcher):
    return BrowserTool(LocalIndex(), fetcher=make_fetcher(timeout=2.0))


def _open(browser: BrowserTool, url: str) -> str:
    message = (
        Message.from_role_and_content(Role.ASSISTANT, json.dumps({"id": url}))
        .with_channel("analysis")
        .with_recipient("browser.open")
    )
    [reply] = asyncio.run(browser.call(message))
    assert reply.author.role == Role.TOOL and reply.recipient == "assistant"
    return reply.content[0].text


@pytest.mark.parametrize("location", HOSTILE_LOCATIONS)
def test_a_redirect_anywhere_but_the_web_is_a_tool_error(browser, hostile, location):
    reply = _open(browser, f"{hostile.url}/to?loc={quote(location, safe='')}")
    assert reply.startswith("Error: "), reply
    assert [r.path for r in hostile.requests] == ["/to"]  # nothing else was fetched


@pytest.mark.parametrize("url", HOSTILE_OPENS)
def test_opening_a_hostile_url_is_a_tool_error(browser, url):
    reply = _open(browser, url)
    assert reply.startswith("Error: "), reply


@pytest.mark.parametrize(
    "path",
    ["/no-location", "/loop", "/bad-gzip", "/bad-pdf", "/odd-status", "/missing"],
)
def test_a_broken_server_answer_is_a_tool_error(browser, hostile, path):
    assert _open(browser, hostile.url + path).startswith("Error: ")


@pytest.mark.parametrize("path", ["/bad-charset", "/bad-json", "/deep-html"])
def test_a_malformed_document_is_shown_or_refused_never_raised(browser, hostile, path):
    reply = _open(browser, hostile.url + path)
    assert reply.startswith(("Error: ", "[0] ")), reply


@pytest.mark.parametrize(
    "reply",
    [
        b"this is not HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: x\r\n\r\n<p>",
        b"",
    ],
)
def test_a_server_that_breaks_the_protocol_is_a_tool_error(browser, reply):
    listener = _garbage_server(reply)
    try:
        answer = _open(browser, f"http://127.0.0.1:{listener.getsockname()[1]}/page")
    finally:
        listener.close()
    assert answer.startswith("Error: "), answer


def test_control_characters_in_a_page_never_reach_the_model(browser, hostile):
    page = _open(browser, hostile.url + "/controls")
    assert page.startswith("[0] ")
    assert not any(c in page for c in "\x1b\x07\x9b\u202e")
    assert "clear" in page


@pytest.mark.parametrize(
    "answer",
    [
        b"[]",
        b'"text"',
        b'{"results": {"a": 1}}',
        b'{"results": [1, "x", null, {"url": 5, "title": ["t"]}, {"url": "x:", "content": 7}]}',
        b'{"results": [{"url": "http://ok.example/", "title": {"a": 1}}]}',
        b"not json",
    ],
)
def test_a_search_api_answering_nonsense_is_a_tool_error(serve, answer):
    from tools.browser.backends.searxng import SearxngBackend

    api = serve(lambda request: (200, {"Content-Type": "application/json"}, answer))
    browser = BrowserTool(SearxngBackend(base_url=api.url), web=False)
    message = (
        Message.from_role_and_content(Role.ASSISTANT, json.dumps({"query": "q"}))
        .with_channel("analysis")
        .with_recipient("browser.search")
    )
    [reply] = asyncio.run(browser.call(message))
    text = reply.content[0].text
    assert text.startswith(("Error: ", "[0] Search results")), text
