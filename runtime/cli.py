"""`oss-agent model ...`: inspect, write, export and train checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


@model_app.command()
def export(
    name: Annotated[str, typer.Argument(help="The bundled model to export: nano.")],
    path: Annotated[Path, typer.Argument(help="Folder to write the checkpoint to.")],
    layout: Annotated[str, typer.Option(help="original or hf (transformers)")] = "original",
) -> None:
    """Write a bundled model as a standard gpt-oss checkpoint folder."""
    from runtime.nano.compact import CompactCheckpoint
    from runtime.save import LAYOUTS, save_checkpoint

    if name != "nano" or layout not in LAYOUTS:
        typer.echo(f"error: the bundled model is 'nano'; layout one of {LAYOUTS}", err=True)
        raise typer.Exit(2)
    checkpoint = CompactCheckpoint()
    save_checkpoint(path, checkpoint.config, checkpoint.standard_tensors(), layout)
    typer.echo(f"wrote nano ({layout}) to {path}")


@model_app.command()
def train(
    data: Annotated[Path, typer.Argument(help="JSONL of harmony conversations, one per line.")],
    out: Annotated[Path, typer.Option(help="Checkpoints go here; the model to OUT/model.")],
    init: Annotated[
        str,
        typer.Option(
            help=f"A checkpoint folder to fine-tune, or a fresh preset: {', '.join(PRESETS)}"
        ),
    ],
    steps: int = 1000,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    save_every: int = 100,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: torch's)")] = None,
    restart: Annotated[bool, typer.Option(help="Ignore a checkpoint in OUT; start over.")] = False,
) -> None:
    """Train or fine-tune on conversations: loss on assistant tokens, resumable."""
    from runtime.train import ConversationError, TrainConfig
    from runtime.train import train as run_training

    start = PRESETS[init] if init in PRESETS else Path(init)
    config = TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, save_every=save_every, threads=threads
    )
    try:
        trainer = run_training(data, out, start, config, resume=not restart)
    except (ConversationError, ConfigError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"final loss {trainer.losses[-1]:.4f}; model written to {out / 'model'}")
