"""Reasoning benchmarks scored across low / medium / high effort.

    from evals import compare_runs, load_report, run_eval

    report = run_eval("http://localhost:8000", ["gpqa", "aime25"], ["low", "high"],
                      out="runs/20b", repeats=4)
    print(report.to_markdown())

The pieces: `benchmarks` (data rows to questions, graders per benchmark), `data` (files and
the download cache), `grading` (answer extraction), `healthbench` (rubric grading),
`sweep` (the run), `store` (the results file), `retry`, `stats`, `report`, `html`,
`compare`, `cli`, `inspect_provider`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _oss_agent_shadowing  # noqa: F401  (a user's own tools.py etc. must not hide our packages)

if TYPE_CHECKING:
    from evals.compare import Comparison, compare_runs
    from evals.report import Report, load_report
    from evals.store import RunSettings
    from evals.sweep import Progress
    from runtime.engine import Engine

__all__ = ["Comparison", "Report", "RunSettings", "compare_runs", "load_report", "run_eval"]


def run_eval(
    model: str | Engine,
    benchmarks: Sequence[str],
    efforts: Sequence[str] = ("low", "medium", "high"),
    *,
    out: str | Path,
    repeats: int = 1,
    limit: int | None = None,
    tools: Sequence[str] = (),
    max_tokens: int = 32768,
    max_turns: int = 20,
    temperature: float | None = None,
    seed: int = 0,
    grader_model: str | Engine | None = None,
    sample_data: bool = False,
    data: dict[str, str] | None = None,
    concurrency: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Report:
    """Run (or resume) the sweep in `out`, then write and return its report.

    `model` / `grader_model`: a checkpoint path, an `http(s)://` URL, or an engine object.
    `benchmarks`: names (gpqa, aime24, aime25, healthbench, healthbench_hard,
    healthbench_consensus, mmlu, nano) or paths of JSONL files. `sample_data` uses the small
    files shipped in `evals/data`; `data` maps a benchmark to its own file or URL.
    """
    from evals.report import load_report
    from evals.store import RunSettings
    from evals.sweep import Sweep

    settings = RunSettings(
        model=model if isinstance(model, str) else type(model).__name__,
        benchmarks=list(benchmarks),
        efforts=[e.lower() for e in efforts],
        repeats=repeats,
        limit=limit,
        tools=list(tools),
        max_tokens=max_tokens,
        max_turns=max_turns,
        temperature=temperature,
        seed=seed,
        grader_model=(
            grader_model if isinstance(grader_model, str | None) else type(grader_model).__name__
        ),
        sample_data=sample_data,
        data=dict(data or {}),
    )
    sweep = Sweep(
        settings,
        out,
        engine=None if isinstance(model, str) else model,
        grader_engine=None if isinstance(grader_model, str | None) else grader_model,
        concurrency=concurrency,
        on_progress=on_progress,
    )
    sweep.run()
    report = load_report(out)
    report.write(out)
    return report


def __getattr__(name: str) -> Any:
    """The API loads on first use, so `oss-agent` starts fast whatever the subcommand."""
    if name in ("Comparison", "compare_runs"):
        from evals import compare

        return getattr(compare, name)
    if name in ("Report", "load_report"):
        from evals import report

        return getattr(report, name)
    if name == "RunSettings":
        from evals.store import RunSettings

        return RunSettings
    raise AttributeError(f"module 'evals' has no attribute {name!r}")
