"""`oss-agent sandbox build|clean`, and the image build they rely on."""

from __future__ import annotations

import io
import socket
import subprocess

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agent.cli import app
from tools.python.docker_backend import OWNER_HOST_LABEL, OWNER_PID_LABEL, SANDBOX_LABEL
from tools.python.errors import SandboxError
from tools.python.image import default_tag, ensure_image

pytestmark = pytest.mark.docker


def test_build_prints_the_cached_image_tag(sandbox_image):
    result = CliRunner().invoke(app, ["sandbox", "build"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == sandbox_image == default_tag()


def test_clean_removes_containers_of_dead_owners(docker_client, sandbox_image):
    child = subprocess.Popen(["true"])
    child.wait()
    labels = {
        SANDBOX_LABEL: "1",
        OWNER_PID_LABEL: str(child.pid),
        OWNER_HOST_LABEL: socket.gethostname(),
    }
    stale = docker_client.containers.create(sandbox_image, ["true"], labels=labels)
    result = CliRunner().invoke(app, ["sandbox", "clean"])
    assert result.exit_code == 0, result.output
    assert f"removed {stale.name}" in result.output
    assert "stale sandbox container(s), volume(s) and folder(s) removed" in result.output


def test_a_missing_image_is_built_with_its_log_shown_then_reused(docker_client, tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM debian:bookworm-slim\nRUN echo built-{tmp_path.name}\n")
    log = io.StringIO()
    tag = ensure_image(docker_client, dockerfile=dockerfile, console=Console(file=log))
    try:
        assert tag == default_tag(dockerfile)
        assert f"built-{tmp_path.name}" in log.getvalue()
        assert f"Built {tag}" in log.getvalue()
        again = io.StringIO()
        cached = ensure_image(docker_client, dockerfile=dockerfile, console=Console(file=again))
        assert cached == tag
        assert again.getvalue() == ""
    finally:
        docker_client.images.remove(tag)


def test_a_failing_build_says_what_to_do(docker_client, tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian:bookworm-slim\nRUN exit 3\n")
    with pytest.raises(SandboxError, match="oss-agent sandbox build"):
        ensure_image(docker_client, dockerfile=dockerfile, console=Console(file=io.StringIO()))


def test_a_missing_custom_image_is_not_built(docker_client):
    with pytest.raises(SandboxError, match="is not present"):
        ensure_image(docker_client, "oss-agent-python:no-such-tag")
