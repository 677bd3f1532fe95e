"""`oss-agent sandbox ...`: build the python sandbox image ahead of use, clean up after crashes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from tools.python.errors import SandboxError

if TYPE_CHECKING:
    import docker

sandbox_app = typer.Typer(help="The python tool's Docker sandbox.", no_args_is_help=True)


@sandbox_app.command()
def build(
    rebuild: bool = typer.Option(False, "--rebuild", help="Build even if the image exists."),
) -> None:
    """Build the sandbox image (done automatically on first use); print its tag."""
    from tools.python.image import ensure_image

    client = _client()
    try:
        tag = ensure_image(client, rebuild=rebuild)
    except SandboxError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(tag)


@sandbox_app.command()
def clean() -> None:
    """Remove sandbox containers, volumes and folders left by processes that no longer run."""
    from tools.python.docker_backend import remove_stale

    client = _client()
    try:
        removed = remove_stale(client)
    except SandboxError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    for name in removed:
        typer.echo(f"removed {name}")
    typer.echo(f"{len(removed)} stale sandbox container(s), volume(s) and folder(s) removed")


def _client() -> docker.DockerClient:
    """The Docker engine, or exit 2 (a missing prerequisite: nothing was done)."""
    from tools.python.image import connect

    try:
        return connect()
    except SandboxError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
