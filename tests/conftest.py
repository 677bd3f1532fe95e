"""Fixtures for real resources shared across the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import agent.harmony

# The oracle (openai-harmony) downloads its vocabulary unless told where a copy is: point it
# at the one we ship, so the differential tests run offline.
os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(Path(agent.harmony.__file__).parent))


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
