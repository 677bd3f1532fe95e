"""`oss-agent eval run | report | compare`."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

eval_app = typer.Typer(
    help="Score a model on reasoning benchmarks at each effort.", no_args_is_help=True
)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _default_out(model: str, tools: list[str]) -> Path:
    """Same model and tools, same folder: running the command again resumes."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model.rstrip("/")).strip("_")[-60:]
    return Path("eval-runs") / ("-".join([name, *tools]) or "run")


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(message, style="red", markup=False)
    return typer.Exit(2)


@eval_app.command("run")
def run(
    benchmark: Annotated[
        str,
        typer.Option(
            # Spelled out rather than imported: evals.benchmarks adds ~0.5 s to every command.
            help="Comma separated: gpqa, aime24, aime25, healthbench, healthbench_hard, "
            "healthbench_consensus, mmlu, nano (the demo model's held-out tasks), or paths of "
            "JSONL files (question, answer, grader)."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Checkpoint folder or server URL (http://host:8000)."),
    ] = None,
    effort: Annotated[str, typer.Option(help="Comma separated efforts.")] = "low,medium,high",
    tools: Annotated[
        str | None, typer.Option(help="Tools the model may use: python, browser.")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Samples per item and effort.")] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="First N items only.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Run folder; the same folder resumes (default eval-runs/<model>)."),
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens sampled per turn.")] = 32768,
    max_turns: Annotated[int, typer.Option(help="Most model turns per sample.")] = 20,
    temperature: Annotated[
        float | None,
        typer.Option(help="Sampling temperature (default: the model's own: 1.0, greedy for nano)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds sampling and GPQA's shuffles.")] = 0,
    grader_model: Annotated[
        str | None, typer.Option(help="Grader for HealthBench rubrics (path or URL).")
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Use the small sample files shipped with evals.")
    ] = False,
    data: Annotated[
        list[str] | None,
        typer.Option(help="BENCHMARK=PATH_OR_URL: read a benchmark from this file (repeatable)."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Samples at once (default 8 for servers, else 1).")
    ] = None,
) -> None:
    """Run (or resume) benchmarks x efforts x repeats; writes report.md / .json / .html."""
    from agent.config import DEMO_NOTICE, ConfigError, load_settings
    from evals.data import DataError
    from evals.report import load_report
    from evals.store import ResumeError, RunSettings
    from evals.sweep import EngineUnusable, Sweep

    try:
        settings = load_settings({"model": model, "tools": tools})
        model_name = settings.require_model()
        if not settings.model:
            Console(stderr=True, soft_wrap=True).print(DEMO_NOTICE, style="dim", markup=False)
        mapping = dict(item.split("=", 1) for item in data or [] if "=" in item)
        if len(mapping) != len(data or []):
            raise ValueError("--data takes BENCHMARK=PATH_OR_URL")
        run_settings = RunSettings(
            model=model_name,
            benchmarks=_split(benchmark),
            efforts=[e.lower() for e in _split(effort)],
            repeats=repeats,
            limit=limit,
            tools=settings.tools,
            browser_backend=settings.browser_backend if "browser" in settings.tools else None,
            max_tokens=max_tokens,
            max_turns=max_turns,
            temperature=temperature,
            seed=seed,
            grader_model=grader_model,
            sample_data=sample,
            data=mapping,
        )
        folder = out or _default_out(model_name, settings.tools)
        console = Console(stderr=True)
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[accuracy]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
        )
        task = bar.add_task("eval", total=None, accuracy="-", speed="0", eta="-")

        def on_progress(progress: Any) -> None:
            accuracy, eta = progress.accuracy, progress.eta_seconds
            bar.update(
                task,
                total=progress.total,
                completed=progress.done,
                accuracy="-" if accuracy is None else f"{100 * accuracy:.1f}%",
                speed=f"{progress.tokens_per_second:.0f}",
                eta="-" if eta is None else str(datetime.timedelta(seconds=round(eta))),
            )

        sweep = Sweep(run_settings, folder, concurrency=concurrency, on_progress=on_progress)
        with bar:
            progress = sweep.run()
    except (ConfigError, DataError, ResumeError, EngineUnusable, ValueError, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: run the same command again to resume")
        raise typer.Exit(130) from None
    report = load_report(folder)
    paths = report.write(folder)
    typer.echo(report.to_markdown())
    console.print(f"results in {folder}: {', '.join(p.name for p in paths.values())}")
    if progress.errors:
        console.print(
            f"{progress.errors} samples ended in errors (not scored); run the same command "
            "again to retry them",
            style="yellow",
        )
        raise typer.Exit(1)


@eval_app.command("report")
def report(
    folder: Annotated[Path, typer.Argument(help="A run folder.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Summarize a run folder (finished or not); writes report.md / .json / .html there."""
    from evals.report import load_report

    try:
        result = load_report(folder)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    result.write(folder)
    if json_output:
        typer.echo(result.to_json())
    else:
        typer.echo(result.to_markdown())


@eval_app.command("compare")
def compare(
    a: Annotated[Path, typer.Argument(help="The run to compare against.")],
    b: Annotated[Path, typer.Argument(help="The run compared.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Accuracy change (B - A) with a paired interval, and the samples that flipped."""
    from evals.compare import compare_runs

    try:
        result = compare_runs(a, b)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    if json_output:
        typer.echo(json.dumps(result.to_dict(), indent=1))
    else:
        typer.echo(result.to_markdown())
