"""Two runs side by side: accuracy change per benchmark and effort with a paired interval,
and every sample whose result flipped."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.report import effort_order, pct, scores_by_item
from evals.stats import bootstrap_mean, paired_difference
from evals.store import RunStore


@dataclass
class Flip:
    item: str
    repeat: int
    before: str  # outcome in run A
    after: str  # outcome in run B


@dataclass
class Change:
    benchmark: str
    effort: str
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float
    ci_high: float
    items: int
    flips: list[Flip] = field(default_factory=list)


@dataclass
class Comparison:
    a: str
    b: str
    changes: list[Change]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "changes": [asdict(c) for c in self.changes]}

    def to_markdown(self, max_flips: int = 20) -> str:
        lines = [
            f"A: {self.a}  \nB: {self.b}",
            "",
            "| benchmark | effort | A % | B % | B - A (points) | 95% paired CI | items "
            "| A right, B not | B right, A not |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in self.changes:
            gained = sum(1 for f in c.flips if f.after == "correct")
            lost = sum(1 for f in c.flips if f.before == "correct")
            lines.append(
                f"| {c.benchmark} | {c.effort} | {pct(c.accuracy_a)} | {pct(c.accuracy_b)} "
                f"| {_signed(c.difference)} | {_signed(c.ci_low)} to {_signed(c.ci_high)} "
                f"| {c.items} | {lost} | {gained} |"
            )
        for c in self.changes:
            if c.flips:
                lines += ["", f"Flips in {c.benchmark} / {c.effort} (item, repeat: A -> B):"]
                lines += [
                    f"- {f.item}, {f.repeat}: {f.before} -> {f.after}" for f in c.flips[:max_flips]
                ]
                if len(c.flips) > max_flips:
                    lines.append(f"- ... and {len(c.flips) - max_flips} more")
        return "\n".join(lines) + "\n"


def _signed(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.1f}"


def compare_runs(a: str | Path, b: str | Path) -> Comparison:
    """Compare run folder `b` against `a` on the samples both have."""
    records_a, records_b = RunStore(a).records(), RunStore(b).records()
    for folder, records in ((a, records_a), (b, records_b)):
        if not records:
            raise FileNotFoundError(f"no results in {folder}")
    group_a, group_b = _groups(records_a), _groups(records_b)
    changes = []
    for key in sorted(set(group_a) & set(group_b), key=lambda k: (k[0], effort_order(k[1]))):
        ra, rb = group_a[key], group_b[key]
        diff, low, high, n = paired_difference(scores_by_item(ra), scores_by_item(rb))
        outcome_a = {(str(r["item"]), r["repeat"]): r for r in ra}
        flips = []
        for r in sorted(rb, key=lambda r: (str(r["item"]), r["repeat"])):
            before = outcome_a.get((str(r["item"]), r["repeat"]))
            if before is None or "error" in (before["outcome"], r["outcome"]):
                continue
            if before["score"] != r["score"]:
                flips.append(Flip(str(r["item"]), r["repeat"], before["outcome"], r["outcome"]))
        changes.append(
            Change(
                key[0],
                key[1],
                bootstrap_mean(list(scores_by_item(ra).values()))[0],
                bootstrap_mean(list(scores_by_item(rb).values()))[0],
                diff,
                low,
                high,
                n,
                flips,
            )
        )
    return Comparison(str(a), str(b), changes)


def _groups(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["benchmark"], r["effort"])].append(r)
    return groups
