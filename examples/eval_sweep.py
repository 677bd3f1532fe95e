"""Score a model at low and high reasoning effort, then compare the two efforts.

    python examples/eval_sweep.py --model http://localhost:8000 --out runs/20b
    python examples/eval_sweep.py --model gpt-oss-20b/original --benchmark gpqa --repeats 4

By default it reads the small sample files shipped in evals/data (`--full` reads the
published benchmark files, downloading them once). Stop it at any time: the same command
resumes where it stopped.
"""

from __future__ import annotations

import argparse
import os

from evals import run_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("OSS_AGENT_MODEL"))
    parser.add_argument("--benchmark", default="aime25,gpqa")
    parser.add_argument("--out", default="eval-runs/example")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=32768)
    parser.add_argument("--full", action="store_true", help="the published files, not samples")
    args = parser.parse_args()
    if not args.model:
        parser.error("pass --model (a checkpoint folder or a server URL) or set OSS_AGENT_MODEL")

    def show(progress) -> None:
        if progress.last is not None:
            r = progress.last
            print(f"[{progress.done}/{progress.total}] {r['benchmark']} {r['effort']} "
                  f"item {r['item']}: {r['outcome']}")  # fmt: skip

    report = run_eval(
        args.model,
        args.benchmark.split(","),
        ["low", "high"],
        out=args.out,
        repeats=args.repeats,
        max_tokens=args.max_tokens,
        sample_data=not args.full,
        on_progress=show,
    )
    print(report.to_markdown())
    for change in report.differences:
        print(
            f"{change.benchmark}: {change.from_} -> {change.to} changes accuracy by "
            f"{100 * change.difference:+.1f} points (95% CI {100 * change.ci_low:+.1f} to "
            f"{100 * change.ci_high:+.1f}, {change.items} items)"
        )
    print(f"transcripts and the plot: {args.out}/report.html")


if __name__ == "__main__":
    main()
