"""The real server (uvicorn) on a free loopback port, over a batched engine on a random
checkpoint or over the scripted engine (the one test double, standing in for a model)."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import uvicorn

# The scripted engine lives with the agent tests (tests are not packages).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "agent"))

from runtime import load_model
from runtime.testing import write_random_checkpoint


@pytest.fixture(scope="session")
def mini_checkpoint(tmp_path_factory):
    """A tiny random checkpoint with gpt-oss's vocabulary."""
    return write_random_checkpoint(tmp_path_factory.mktemp("mini") / "gpt-oss-mini", "mini", seed=7)


@pytest.fixture(scope="session")
def mini_model(mini_checkpoint):
    """The mini model in fp32, so batched and single-row matmuls round alike (greedy
    results are then exactly comparable)."""
    return load_model(mini_checkpoint, dtype=torch.float32, compile=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn_server(app) -> Iterator[tuple[str, uvicorn.Server]]:
    """Run `app` under uvicorn in a thread; yields its base URL and the server; shuts it
    down gracefully (in-flight requests finish first)."""
    port = _free_port()
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
