"""Fetching over real loopback servers: redirects, guard on every hop, limits, retries."""

from __future__ import annotations

import asyncio
import time

import pytest

from tools.browser.fetch import FetchError, TooLarge
from tools.browser.guard import EgressDenied
from tools.browser.page import UnsupportedContent


def fetch(fetcher, url):
    return asyncio.run(fetcher.fetch(url))


def test_fetches_a_page_connecting_to_the_checked_address(site, make_fetcher):
    fetcher = make_fetcher()
    raw = fetch(fetcher, f"{site.url}/index.html")
    assert raw.status == 200 and b"Welcome" in raw.content
    assert raw.media_type == "text/html"
    assert fetcher.hop.connected == ["127.0.0.1"]


def test_host_name_is_kept_while_the_resolved_address_is_pinned(site, make_fetcher):
    # site.test exists only in the injected resolver: reaching the server proves the
    # connection went to the address the guard checked, with the name in the Host header.
    fetcher = make_fetcher()
    raw = fetch(fetcher, f"http://site.test:{site.port}/notes.txt")
    assert raw.content == b"first note\nsecond note"
    assert site.requests[-1].headers["host"] == f"site.test:{site.port}"
    assert raw.url == f"http://site.test:{site.port}/notes.txt"


def test_redirects_are_followed_and_cached(site, make_fetcher):
    fetcher = make_fetcher()
    raw = fetch(fetcher, f"{site.url}/redirect")
    assert raw.url == f"{site.url}/index.html"
    assert [r.path for r in site.requests] == ["/redirect", "/index.html"]
    again = fetch(fetcher, f"{site.url}/redirect")
    assert again is raw and len(site.requests) == 2


def test_a_redirect_chain_over_the_limit_fails(site, make_fetcher):
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        fetch(make_fetcher(max_redirects=3), f"{site.url}/chain/0")
    assert [r.path for r in site.requests] == [f"/chain/{i}" for i in range(4)]


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/to-metadata", "link-local"), ("/to-internal", "private"), ("/to-loopback", "loopback")],
)
def test_a_redirect_to_a_forbidden_address_is_refused_without_connecting(
    site, make_fetcher, path, reason
):
    fetcher = make_fetcher()
    with pytest.raises(EgressDenied, match=reason):
        fetch(fetcher, f"{site.url}{path}")
    assert fetcher.hop.connected == ["127.0.0.1"]  # only the first, allowed hop


def test_a_first_url_at_a_forbidden_address_is_refused(make_fetcher):
    fetcher = make_fetcher()
    for url in (
        "http://169.254.169.254/",
        "http://[::1]/",
        "http://internal.test/",
        "file:///etc/passwd",
    ):
        with pytest.raises(EgressDenied):
            fetch(fetcher, url)
    assert fetcher.hop.connected == []


def test_a_slow_server_times_out(site, make_fetcher):
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"did not answer within 0\.5 s"):
        fetch(make_fetcher(timeout=0.5), f"{site.url}/slow")
    assert time.monotonic() - started < 2.5


def test_a_body_over_the_size_limit_is_cut_off(site, make_fetcher):
    with pytest.raises(TooLarge, match="100000-byte limit"):
        fetch(make_fetcher(max_bytes=100_000), f"{site.url}/huge")


def test_unsupported_content_is_refused_without_reading_it(site, make_fetcher):
    with pytest.raises(UnsupportedContent, match="application/octet-stream"):
        fetch(make_fetcher(), f"{site.url}/binary")


def test_http_errors_say_what_happened(site, make_fetcher):
    with pytest.raises(FetchError, match=r"HTTP 404 .*does not exist"):
        fetch(make_fetcher(), f"{site.url}/missing")


def test_503_is_retried_then_succeeds(site, make_fetcher):
    raw = fetch(make_fetcher(), f"{site.url}/flaky")
    assert b"recovered" in raw.content
    assert [r.path for r in site.requests] == ["/flaky", "/flaky"]


def test_retries_are_bounded(site, make_fetcher):
    with pytest.raises(FetchError, match=r"HTTP 503 .*after 3 tries"):
        fetch(make_fetcher(retries=2), f"{site.url}/down")
    assert len(site.requests) == 3


def test_a_retry_after_beyond_the_cap_is_not_waited_for(site, make_fetcher):
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"HTTP 429 .*retry after 3600"):
        fetch(make_fetcher(), f"{site.url}/rate-limited")
    assert len(site.requests) == 1 and time.monotonic() - started < 1


def test_a_refused_connection_is_a_clear_error(make_fetcher):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match=r"could not connect to 127\.0\.0\.1"):
        fetch(make_fetcher(), f"http://127.0.0.1:{port}/")
