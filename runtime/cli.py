"""`oss-agent model ...`: inspect checkpoints and write random ones."""

from __future__ import annotations

from pathlib import Path

import typer

from runtime.config import PRESETS, ConfigError, estimate_bytes

model_app = typer.Typer(
    help="Inspect gpt-oss checkpoints and write random ones.", no_args_is_help=True
)


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


@model_app.command()
def info(path: Path) -> None:
    """Print a checkpoint's layout, config, sizes and memory estimate."""
    from runtime.checkpoint import Checkpoint, CheckpointError
    from runtime.load import check_tensors

    try:
        checkpoint = Checkpoint(path)
        check_tensors(checkpoint)
    except (CheckpointError, ConfigError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    config = checkpoint.config
    counts = config.param_counts()
    sizes = estimate_bytes(config)
    on_disk = sum(file.stat().st_size for file in checkpoint.files)
    typer.echo(f"path: {checkpoint.path}")
    typer.echo(f"layout: {checkpoint.layout} ({len(checkpoint.files)} file(s), {_gib(on_disk)})")
    for key, value in config.to_original().items():
        typer.echo(f"  {key}: {value}")
    total = counts["dense"] + counts["experts"]
    typer.echo(f"parameters: {_count(total)} total, {_count(counts['active'])} active per token")
    typer.echo(
        f"memory (experts packed MXFP4, rest bf16): {_gib(sizes['total'])} "
        f"(experts {_gib(sizes['experts'])}, dense {_gib(sizes['dense'])})"
    )


@model_app.command()
def random(
    path: Path,
    preset: str = typer.Option("tiny", help=f"One of: {', '.join(PRESETS)}"),
    layout: str = typer.Option("original", help="original or hf"),
    seed: int = typer.Option(0, help="Seed of the random weights."),
    force: bool = typer.Option(False, "--force", help="Overwrite what is at PATH."),
) -> None:
    """Write a checkpoint with random weights in the real on-disk format.

    Refuses a PATH that is not an empty folder (a typo must not wipe a download) unless
    --force.
    """
    from runtime.testing import LAYOUTS, write_random_checkpoint

    if preset not in PRESETS or layout not in LAYOUTS:
        typer.echo(
            f"error: preset must be one of {list(PRESETS)}, layout one of {LAYOUTS}", err=True
        )
        raise typer.Exit(2)
    if path.exists() and not path.is_dir():
        typer.echo(f"error: {path} is a file; give a folder", err=True)
        raise typer.Exit(2)
    if path.is_dir() and any(path.iterdir()) and not force:
        what = "a checkpoint" if (path / "config.json").exists() else "files"
        typer.echo(
            f"error: {path} already holds {what}; pass --force to overwrite, or choose a new "
            "folder",
            err=True,
        )
        raise typer.Exit(2)
    write_random_checkpoint(path, PRESETS[preset], seed=seed, layout=layout)
    typer.echo(f"wrote {preset} ({layout}) to {path}")
