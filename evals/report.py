"""A run's numbers per benchmark and effort, and the differences between efforts.

Accuracy is the mean score over graded samples: "no answer" and "truncated" count as
wrong there but are also counted apart; errors are left out of accuracy entirely and
counted apart. Intervals are 95% bootstrap intervals over items.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.benchmarks import EFFORTS, published_scores
from evals.stats import bootstrap_mean, paired_difference, percentile
from evals.store import RunSettings, RunStore


@dataclass
class Row:
    """One benchmark at one effort."""

    benchmark: str
    effort: str
    samples: int
    items: int
    accuracy: float
    ci_low: float
    ci_high: float
    correct: int
    wrong: int
    no_answer: int
    truncated: int
    errors: int
    reasoning_tokens: float  # mean per sample
    completion_tokens: float  # mean per sample (reasoning included)
    latency_p50: float  # seconds per sample
    latency_p90: float
    tool_calls: float  # mean per sample
    recoveries: int  # harmony repairs the parser made, over all samples
    published: dict[str, float] = field(default_factory=dict)


@dataclass
class EffortDifference:
    """Accuracy at `to` minus at `from_`, paired by item."""

    benchmark: str
    from_: str
    to: str
    difference: float
    ci_low: float
    ci_high: float
    items: int


@dataclass
class Report:
    settings: RunSettings | None
    rows: list[Row]
    differences: list[EffortDifference]
    records: list[dict[str, Any]] = field(repr=False)

    def row(self, benchmark: str, effort: str) -> Row:
        return next(r for r in self.rows if r.benchmark == benchmark and r.effort == effort)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.model_dump() if self.settings else None,
            "rows": [asdict(r) for r in self.rows],
            "differences": [asdict(d) for d in self.differences],
        }

    def to_json(self) -> str:
        return json.dumps(_finite(self.to_dict()), indent=1)

    def to_markdown(self) -> str:
        return markdown(self)

    def write(self, folder: str | Path) -> dict[str, Path]:
        """report.md, report.json and report.html in `folder`."""
        from evals.html import html_page

        folder = Path(folder)
        paths = {
            "markdown": folder / "report.md",
            "json": folder / "report.json",
            "html": folder / "report.html",
        }
        paths["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        paths["json"].write_text(self.to_json(), encoding="utf-8")
        paths["html"].write_text(html_page(self), encoding="utf-8")
        return paths


def _finite(value: Any) -> Any:
    """NaN (nothing graded) as null, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def effort_order(effort: str) -> int:
    return EFFORTS.index(effort) if effort in EFFORTS else len(EFFORTS)


def scores_by_item(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each item's scores across repeats (errors left out)."""
    by_item: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["outcome"] != "error":
            by_item[str(r["item"])].append(r["score"])
    return by_item


def summarize(records: list[dict[str, Any]], settings: RunSettings | None = None) -> Report:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["benchmark"], r["effort"])].append(r)
    rows = []
    for (name, effort), group in sorted(
        groups.items(), key=lambda g: (g[0][0], effort_order(g[0][1]))
    ):
        by_item = scores_by_item(group)
        accuracy, low, high = bootstrap_mean(list(by_item.values()))
        outcomes = defaultdict(int)
        for r in group:
            outcomes[r["outcome"]] += 1
        seconds = [r["seconds"] for r in group]
        published = published_scores(name, effort, group[0].get("tools") or [])
        rows.append(
            Row(
                benchmark=name,
                effort=effort,
                samples=len(group),
                items=len({str(r["item"]) for r in group}),
                accuracy=accuracy,
                ci_low=low,
                ci_high=high,
                correct=outcomes["correct"],
                wrong=outcomes["wrong"],
                no_answer=outcomes["no_answer"],
                truncated=outcomes["truncated"],
                errors=outcomes["error"],
                reasoning_tokens=_mean([r["usage"]["reasoning_tokens"] for r in group]),
                completion_tokens=_mean([r["usage"]["completion_tokens"] for r in group]),
                latency_p50=percentile(seconds, 50),
                latency_p90=percentile(seconds, 90),
                tool_calls=_mean([len(r["tool_calls"]) for r in group]),
                # Records written before the field existed count as none.
                recoveries=sum(len(r.get("recoveries", [])) for r in group),
                published=published,
            )
        )
    return Report(settings, rows, _differences(groups), records)


def _differences(groups: dict[tuple[str, str], list[dict[str, Any]]]) -> list[EffortDifference]:
    """Each pair of efforts run on a benchmark, lower effort first."""
    out = []
    for name in sorted({b for b, _ in groups}):
        efforts = sorted((e for b, e in groups if b == name), key=effort_order)
        for i, low in enumerate(efforts):
            for high in efforts[i + 1 :]:
                diff, lo, hi, n = paired_difference(
                    scores_by_item(groups[(name, low)]), scores_by_item(groups[(name, high)])
                )
                out.append(EffortDifference(name, low, high, diff, lo, hi, n))
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def load_report(folder: str | Path) -> Report:
    """The report of a run folder (finished or not)."""
    store = RunStore(folder)
    if not store.results.exists():
        raise FileNotFoundError(f"no results in {folder} (expected {store.results})")
    return summarize(store.records(), store.settings())


def pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.1f}"


def markdown(report: Report) -> str:
    header = (
        "| benchmark | effort | accuracy % | 95% CI | n | no answer | truncated | errors "
        "| reasoning tok | total tok | p50 s | p90 s | tool calls | parser repairs "
        "| published 20b / 120b |"
    )
    lines = [header, "|" + "---|" * 15]
    for r in report.rows:
        published = " / ".join(
            f"{r.published[m]:.1f}" for m in ("gpt-oss-20b", "gpt-oss-120b") if m in r.published
        )
        lines.append(
            f"| {r.benchmark} | {r.effort} | {pct(r.accuracy)} | {pct(r.ci_low)}-{pct(r.ci_high)} "
            f"| {r.samples} | {r.no_answer} | {r.truncated} | {r.errors} "
            f"| {r.reasoning_tokens:.0f} | {r.completion_tokens:.0f} "
            f"| {r.latency_p50:.2f} | {r.latency_p90:.2f} | {r.tool_calls:.2f} "
            f"| {r.recoveries} | {published or '-'} |"
        )
    if report.differences:
        lines += [
            "",
            "| benchmark | effort change | accuracy change (points) | 95% paired CI | items |",
        ]
        lines.append("|---|---|---|---|---|")
        for d in report.differences:
            lines.append(
                f"| {d.benchmark} | {d.from_} -> {d.to} | {_signed(d.difference)} "
                f"| {_signed(d.ci_low)} to {_signed(d.ci_high)} | {d.items} |"
            )
    return "\n".join(lines) + "\n"


def _signed(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.1f}"
