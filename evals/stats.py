"""Error bars: bootstrap intervals over items, paired when two settings are compared.

Repeats of one item are not independent draws, so the bootstrap resamples items (each
with all its repeats), not samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RESAMPLES = 5000


def bootstrap_mean(
    per_item: Sequence[Sequence[float]], *, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean score and its percentile bootstrap interval; `per_item` holds each item's
    scores across repeats."""
    items = [list(scores) for scores in per_item if len(scores)]
    if not items:
        return float("nan"), float("nan"), float("nan")
    means = np.array([np.mean(s) for s in items])
    weights = np.array([len(s) for s in items], dtype=float)
    mean = float(np.average(means, weights=weights))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(items), size=(RESAMPLES, len(items)))
    resampled = (means[picks] * weights[picks]).sum(axis=1) / weights[picks].sum(axis=1)
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    return mean, float(low), float(high)


def paired_difference(
    a: Mapping[str, Sequence[float]],
    b: Mapping[str, Sequence[float]],
    *,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """Mean of b - a over the items both have (each item's mean over its repeats), with a
    bootstrap interval over those items, and how many items were paired."""
    common = sorted(set(a) & set(b))
    common = [k for k in common if len(a[k]) and len(b[k])]
    if not common:
        return float("nan"), float("nan"), float("nan"), 0
    diffs = np.array([np.mean(b[k]) - np.mean(a[k]) for k in common])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diffs), size=(RESAMPLES, len(diffs)))
    resampled = diffs[picks].mean(axis=1)
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    return float(diffs.mean()), float(low), float(high), len(common)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")
