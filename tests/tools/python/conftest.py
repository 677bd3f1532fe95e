"""Fixtures of the python tool's tests."""

from __future__ import annotations

import os

import docker
import pytest
from docker.errors import DockerException

from tools.python.docker_backend import owned_filters


@pytest.fixture(scope="session")
def owned_containers(docker_client):
    """Lists the sandbox containers this test process owns, running or not."""
    return lambda: docker_client.containers.list(all=True, filters=owned_filters(os.getpid()))


@pytest.fixture(scope="session", autouse=True)
def no_leaked_containers():
    """After the python tool's tests, no sandbox container of this process may remain
    (reported as an error of the last test)."""
    yield
    try:
        client = docker.from_env()
        client.ping()
    except DockerException:  # no engine: nothing can have been started
        return
    try:
        leaked = client.containers.list(all=True, filters=owned_filters(os.getpid()))
    finally:
        client.close()
    leaked = [c.name for c in leaked]
    assert not leaked, f"sandbox containers left behind: {leaked}"
