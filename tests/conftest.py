"""Fixtures for real resources shared across the suite."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from model_servers import ModelServer

import agent.harmony

# The oracle (openai-harmony) downloads its vocabulary unless told where a copy is: point it
# at the one we ship, so the differential tests run offline.
os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(Path(agent.harmony.__file__).parent))

# Temporary files of this test run (and of the processes it starts) go to a folder of its
# own, so that the leak check below sees this run's leftovers and no one else's.
_RUN_TMP = Path(tempfile.mkdtemp(prefix="oss-agent-test-run-"))
tempfile.tempdir = os.environ["TMPDIR"] = str(_RUN_TMP)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the run, no sandbox container or volume of this process and no session folder
    (data or kernel) may remain, even from tests that failed (reported as an error of the
    last test). Removes the run's temporary folder."""
    yield
    leaked = [f"folder {p.name}" for p in _RUN_TMP.glob("oss-agent-*")]
    leaked += _leaked_docker_objects()
    shutil.rmtree(_RUN_TMP, ignore_errors=True)
    assert not leaked, f"left behind: {leaked}"


def _leaked_docker_objects() -> list[str]:
    import docker
    from docker.errors import DockerException

    from tools.python.docker_backend import owned_filters

    try:
        client = docker.from_env()
        client.ping()
    except DockerException:  # no engine: nothing can have been started
        return []
    mine = owned_filters(os.getpid())
    try:
        containers = [f"container {c.name}" for c in client.containers.list(all=True, filters=mine)]
        volumes = [f"volume {v.name}" for v in client.volumes.list(filters=mine)]
    finally:
        client.close()
    return containers + volumes


@pytest.fixture(scope="session")
def docker_client():
    """A client of the local Docker engine. Outside CI, tests that need one are skipped when
    no engine answers; in CI (CI=true) that is a failure, since .ci/install starts one."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a Docker engine (.ci/install starts one): {exc}")
        pytest.skip(f"needs a Docker engine (run .ci/install to start one): {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:
    """The python sandbox image's tag, built on first use (minutes) and cached by Docker."""
    from tools.python.image import ensure_image

    return ensure_image(docker_client)


@pytest.fixture
def model_server():
    """Loopback model servers answering as a given kind (vllm, sglang, ollama, llamacpp, ...)
    does; `model_server(kind, turns)` starts one, closed after the test."""
    servers: list[ModelServer] = []

    def start(kind: str, turns: list[list[int]], **options) -> ModelServer:
        servers.append(ModelServer(kind, turns, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
