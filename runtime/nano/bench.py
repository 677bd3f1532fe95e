"""How well a model solves the nano task family through the real agent loop and sandbox.

    python -m runtime.nano.bench [--tasks runtime/nano/heldout.jsonl] [--model nano]
        [--effort low,medium,high] [--limit N] [--functions]

Each task runs in a fresh conversation of `agent.Agent` with the python tool (and, with
`--functions`, the `convert_units` function), greedy decoding. Reports accuracy, tokens,
tool calls and parser recoveries per effort. The tasks file is the evals package's user
JSONL (question, answer, grader).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.grading import grade_numeric

HELDOUT = Path(__file__).parent / "heldout.jsonl"


@dataclass
class EffortReport:
    effort: str
    tasks: int = 0
    correct: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    tool_calls: int = 0
    recoveries: list[str] = field(default_factory=list)  # what the lenient parser repaired
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.tasks if self.tasks else 0.0

    def row(self) -> str:
        n = max(self.tasks, 1)
        return (
            f"| {self.effort} | {self.correct}/{self.tasks} ({100 * self.accuracy:.1f}%) | "
            f"{self.completion_tokens / n:.1f} | {self.reasoning_tokens / n:.1f} | "
            f"{self.tool_calls / n:.2f} | {len(self.recoveries)} | {self.seconds / n:.2f} |"
        )


HEADER = (
    "| effort | correct | tokens / task | reasoning tokens / task | tool calls / task | "
    "parser recoveries | seconds / task |\n|---|---|---|---|---|---|---|"
)


def read_tasks(path: str | Path, limit: int | None = None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def evaluate(
    engine: Any,
    tasks: list[dict[str, str]],
    efforts: list[str],
    *,
    functions: bool = False,
    python: Any = None,
) -> list[EffortReport]:
    """Run every task at every effort through `agent.Agent` and the python tool."""
    from agent.loop import Agent
    from runtime.nano.tasks import FUNCTION_TOOLS
    from tools.python import PythonTool

    own_python = python is None
    python = python or PythonTool()
    tools = [python, *(FUNCTION_TOOLS if functions else [])]
    reports = []
    try:
        for effort in efforts:
            report = EffortReport(effort)
            agent = Agent(
                engine,
                tools=tools,
                reasoning_effort=effort,  # type: ignore[arg-type]
                temperature=0.0,
                max_turns=4,
                max_tokens_per_turn=256,
            )
            for task in tasks:
                agent.reset()
                started = time.monotonic()
                result = agent.run(task["question"])
                report.seconds += time.monotonic() - started
                report.tasks += 1
                answered = result.stop_reason == "final"
                ok = (
                    answered
                    and grade_numeric(result.final_output, task["answer"]).outcome == "correct"
                )
                report.correct += ok
                report.completion_tokens += result.usage.completion_tokens
                report.reasoning_tokens += result.usage.reasoning_tokens
                report.tool_calls += len(result.tool_calls)
                report.recoveries += [r for t in result.turns for r in t.recoveries]
                if not ok:
                    report.failures.append(
                        {**task, "output": result.final_output, "stop": result.stop_reason}
                    )
            reports.append(report)
    finally:
        if own_python:
            import asyncio

            asyncio.run(python.aclose())
    return reports


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=Path, default=HELDOUT)
    parser.add_argument("--model", default="nano")
    parser.add_argument("--effort", default="low,medium,high")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--functions", action="store_true", help="offer convert_units too")
    parser.add_argument("--failures", action="store_true", help="print the wrong answers")
    args = parser.parse_args(argv)
    from runtime import load_model

    engine = load_model(args.model)
    tasks = read_tasks(args.tasks, args.limit)
    reports = evaluate(engine, tasks, args.effort.split(","), functions=args.functions)
    print(HEADER)
    for report in reports:
        print(report.row())
    if args.failures:
        for report in reports:
            for failure in report.failures:
                print(report.effort, json.dumps(failure))


if __name__ == "__main__":
    main()
