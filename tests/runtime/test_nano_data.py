"""The nano training data: tasks whose answers cover every number token."""

from __future__ import annotations

import random
from collections import Counter

from runtime.nano.data import DIGIT_GROUPS, covering_values, digit_groups
from runtime.nano.tasks import sum_task


def test_digit_groups_are_the_tokens_the_model_writes_numbers_with():
    assert digit_groups("113004") == ["113", "004"]
    assert digit_groups("1340.036") == ["134", "0", "036"]


def test_covering_values_bring_every_digit_group_up_to_the_floor():
    answers = ["113004", "1340.036", "56877"]
    values = covering_values(answers, floor=2)
    counts = Counter(g for text in answers + [str(v) for v in values] for g in digit_groups(text))
    assert {group: counts[group] for group in DIGIT_GROUPS if counts[group] < 2} == {}
    # Each value covers one group behind a three-digit lead, so that group is its own token.
    for value in values:
        lead, covered = digit_groups(str(value))
        assert len(lead) == 3 and not lead.startswith("0") and covered in DIGIT_GROUPS


def test_covering_values_add_nothing_once_every_group_is_common():
    answers = [str(value) for value in covering_values([], floor=1)]
    assert len(answers) < len(DIGIT_GROUPS)  # a lead covers a three-digit group as well
    assert covering_values(answers, floor=1) == []


def test_a_sum_task_adds_up_to_its_value():
    rng = random.Random(0)
    for value in (2, 113004, 999999):
        task = sum_task(rng, value)
        assert eval(task.code) == value
        assert task.code in task.question
