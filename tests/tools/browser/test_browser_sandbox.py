"""Sandboxed fetching: each hop runs in a throwaway container of the sandbox image.

The container uses the host network only so that it can reach the loopback test server;
the guard and the address pinning still run on the host.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tools.browser.fetch import Fetcher, FetchError, FetchLimits
from tools.browser.guard import EgressDenied
from tools.browser.page import render
from tools.browser.sandbox import DockerHop
from tools.python.docker_backend import OWNER_PID_LABEL

pytestmark = pytest.mark.docker


@pytest.fixture
def sandboxed(docker_client, sandbox_image, test_guard):
    hop = DockerHop(docker_client, sandbox_image, network_mode="host")
    return Fetcher(test_guard, FetchLimits(timeout=5.0, max_bytes=100_000), hop)


def test_a_page_fetched_in_the_sandbox_is_rendered_on_the_host(sandboxed, site, docker_client):
    raw = asyncio.run(sandboxed.fetch(f"http://site.test:{site.port}/redirect"))
    assert raw.url == f"http://site.test:{site.port}/index.html"
    assert [r.path for r in site.requests] == ["/redirect", "/index.html"]
    assert site.requests[-1].headers["host"] == f"site.test:{site.port}"
    page = render(raw)
    assert page.title == "Index" and "【1†other site†localhost】" in "\n".join(page.lines)
    pdf = render(asyncio.run(sandboxed.fetch(f"{site.url}/doc.pdf")))
    assert pdf.lines == ["Hello PDF world"]
    mine = ["oss-agent.role=browser-fetch", f"{OWNER_PID_LABEL}={os.getpid()}"]
    leftovers = docker_client.containers.list(all=True, filters={"label": mine})
    assert leftovers == []


def test_the_sandbox_enforces_limits_and_the_host_guard(sandboxed, site):
    with pytest.raises(FetchError, match="100000-byte limit"):
        asyncio.run(sandboxed.fetch(f"{site.url}/huge"))
    with pytest.raises(EgressDenied, match="link-local"):
        asyncio.run(sandboxed.fetch(f"{site.url}/to-metadata"))
    with pytest.raises(FetchError, match="HTTP 404"):
        asyncio.run(sandboxed.fetch(f"{site.url}/missing"))


def test_a_fetch_sandbox_that_cannot_start_is_a_fetch_error(docker_client, test_guard, site):
    hop = DockerHop(docker_client, "oss-agent-python:no-such-tag", network_mode="host")
    fetcher = Fetcher(test_guard, FetchLimits(timeout=5.0), hop)
    with pytest.raises(FetchError, match="the fetch sandbox could not start"):
        asyncio.run(fetcher.fetch(f"{site.url}/index.html"))
