"""Helpers shared by the server tests (a uniquely named module: tests are not packages)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn_server(app) -> Iterator[tuple[str, uvicorn.Server]]:
    """Run `app` under uvicorn in a thread; yields its base URL and the server; shuts it
    down gracefully (in-flight requests finish first)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    with uvicorn_server(app) as (url, _):
        yield url
