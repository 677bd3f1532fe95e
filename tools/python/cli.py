"""`oss-agent sandbox ...`: build the python sandbox image ahead of use, clean up after crashes."""

from __future__ import annotations

import typer

from tools.python.errors import SandboxError

sandbox_app = typer.Typer(help="The python tool's Docker sandbox.", no_args_is_help=True)


@sandbox_app.command()
def build(
    rebuild: bool = typer.Option(False, "--rebuild", help="Build even if the image exists."),
) -> None:
    """Build the sandbox image (done automatically on first use); print its tag."""
    from tools.python.image import connect, ensure_image

    try:
        tag = ensure_image(connect(), rebuild=rebuild)
    except SandboxError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(tag)


@sandbox_app.command()
def clean() -> None:
    """Remove sandbox containers, volumes and folders left by processes that no longer run."""
    from tools.python.docker_backend import remove_stale
    from tools.python.image import connect

    try:
        removed = remove_stale(connect())
    except SandboxError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    for name in removed:
        typer.echo(f"removed {name}")
    typer.echo(f"{len(removed)} stale sandbox container(s), volume(s) and folder(s) removed")
