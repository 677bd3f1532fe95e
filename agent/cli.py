"""The `oss-agent` command. Each concern registers its own sub-command group here."""

from __future__ import annotations

import typer

from runtime.cli import model_app

app = typer.Typer(
    name="oss-agent",
    help="Run gpt-oss models as tool-using agents.",
    no_args_is_help=True,
    add_completion=False,
)

app.add_typer(model_app, name="model")


@app.command()
def version() -> None:
    """Print the installed oss-agent version."""
    from agent import __version__

    typer.echo(__version__)


def main() -> None:
    app()
