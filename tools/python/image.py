"""The sandbox image: built from the package's Dockerfile, tagged by the Dockerfile's hash.

A content-addressed tag means an existing image is reused as is, and an edited Dockerfile
gets a new tag and therefore a rebuild, with no staleness check to get wrong.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound
from rich.console import Console

from tools.python.errors import SandboxError

DOCKERFILE = Path(__file__).with_name("Dockerfile")
REPOSITORY = "oss-agent-python"


def default_tag(dockerfile: Path = DOCKERFILE) -> str:
    """`oss-agent-python:<first 12 hex digits of the Dockerfile's sha256>`."""
    digest = hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:12]
    return f"{REPOSITORY}:{digest}"


def connect() -> docker.DockerClient:
    """A client of the local Docker engine, or a SandboxError saying how to get one."""
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        raise SandboxError(
            f"Cannot reach a Docker engine ({exc}). Start it (e.g. `sudo systemctl start "
            "docker`, or `dockerd &`), check DOCKER_HOST and that you may use its socket, or "
            "choose SandboxConfig(backend='local') to run code unsandboxed on this machine."
        ) from exc
    return client


def ensure_image(
    client: docker.DockerClient,
    tag: str | None = None,
    *,
    dockerfile: Path = DOCKERFILE,
    rebuild: bool = False,
    console: Console | None = None,
) -> str:
    """Return `tag` (default: `default_tag(dockerfile)`), building it first if it is missing.

    Only the Dockerfile's own tag can be built here; another missing image is an error.
    """
    tag = tag or default_tag(dockerfile)
    if not rebuild and _exists(client, tag):
        return tag
    if tag != default_tag(dockerfile):
        raise SandboxError(
            f"Image {tag!r} is not present. Build or pull it first, or leave "
            "SandboxConfig.image unset to use the package's own image."
        )
    _build(client, dockerfile, tag, console or Console(stderr=True))
    return tag


def _exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def _build(client: docker.DockerClient, dockerfile: Path, tag: str, console: Console) -> None:
    """Build from the Dockerfile alone (it copies nothing), streaming the log to `console`."""
    with console.status(f"Building the python sandbox image {tag} (first use; a few minutes)"):
        for chunk in client.api.build(
            fileobj=io.BytesIO(dockerfile.read_bytes()), tag=tag, rm=True, forcerm=True, decode=True
        ):
            if "error" in chunk:
                raise SandboxError(
                    f"Building {tag} failed: {chunk['error'].strip()}. The build needs "
                    "`debian:bookworm-slim` and access to Debian's package mirror; retry with "
                    "`oss-agent sandbox build` once both are available."
                )
            line = chunk.get("stream", "").rstrip()
            if line:
                console.print(line, style="dim", markup=False, highlight=False)
    console.print(f"Built {tag}", markup=False, highlight=False)
