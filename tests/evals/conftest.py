"""Fixtures for the eval tests: the scripted engine's folder on the path, loopback model
servers, an isolated data cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))


@pytest.fixture
def model_server():
    """Start `eval_server.ModelServer`s; all are shut down after the test."""
    from eval_server import ModelServer

    servers = []

    def start(respond, statuses=(), delay=0.0):
        servers.append(ModelServer(respond, statuses, delay))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def eval_cache(tmp_path, monkeypatch):
    """Downloads go to a fresh cache per test, never the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OSS_AGENT_EVAL_CACHE", str(cache))
    return cache
