"""Fixtures of the python tool's tests."""

from __future__ import annotations

import os

import pytest

from tools.python.docker_backend import owned_filters


@pytest.fixture(scope="session")
def owned_containers(docker_client):
    """Lists the sandbox containers this test process owns, running or not."""
    return lambda: docker_client.containers.list(all=True, filters=owned_filters(os.getpid()))
