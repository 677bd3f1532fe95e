"""Error bars: item-level bootstrap, paired differences."""

from __future__ import annotations

import math

import pytest

from evals.stats import bootstrap_mean, paired_difference, percentile


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_items() -> None:
    few = [[1.0], [0.0]] * 5
    many = [[1.0], [0.0]] * 200
    mean, low, high = bootstrap_mean(few)
    assert mean == 0.5 and low < 0.5 < high
    _, low_many, high_many = bootstrap_mean(many)
    assert high_many - low_many < (high - low) / 3
    # Binomial standard error at n=400 is 0.025: the 95% interval is about +-0.049.
    assert high_many - low_many == pytest.approx(2 * 1.96 * 0.025, rel=0.15)


def test_repeats_of_one_item_are_not_counted_as_independent() -> None:
    # Ten items, each answered the same way in all 8 repeats: 10 draws of information,
    # not 80, so the interval is as wide as for one repeat each.
    one_repeat = [[1.0], [0.0]] * 5
    eight_repeats = [[1.0] * 8, [0.0] * 8] * 5
    assert bootstrap_mean(eight_repeats)[1:] == pytest.approx(
        bootstrap_mean(one_repeat)[1:], abs=0.05
    )


def test_paired_difference_uses_the_items_both_runs_have() -> None:
    a = {"1": [0.0], "2": [0.0], "3": [1.0], "only-a": [1.0]}
    b = {"1": [1.0], "2": [1.0], "3": [1.0], "only-b": [0.0]}
    diff, low, high, n = paired_difference(a, b)
    assert (diff, n) == (pytest.approx(2 / 3), 3)
    assert low <= diff <= high


def test_nothing_to_measure_is_nan_not_zero() -> None:
    assert all(math.isnan(v) for v in bootstrap_mean([]))
    assert math.isnan(percentile([], 50))
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
