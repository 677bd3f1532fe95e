"""Graders on what models really write, traps included."""

from __future__ import annotations

import threading

import pytest

from evals.grading import (
    boxed_contents,
    grade_choice,
    grade_exact,
    grade_integer,
    grade_math,
    grade_numeric,
    math_equal,
)

CHOICE = [
    # (final answer text, gold, outcome, extracted)
    ("Answer: C", "C", "correct", "C"),
    ("**Answer:** B", "C", "wrong", "B"),
    ("The reaction is exothermic.\n\nAnswer: **D**", "D", "correct", "D"),
    ("**C**", "C", "correct", "C"),
    ("(B)", "B", "correct", "B"),
    ("C) 42 kg", "C", "correct", "C"),
    ("$\\boxed{\\text{C}}$", "C", "correct", "C"),
    ("\\boxed{\\textbf{(A)}}", "A", "correct", "A"),
    ("The answer is not A; the answer is C.", "C", "correct", "C"),
    ("It is certainly not A.", "A", "no_answer", None),
    ("Answer: not A", "A", "no_answer", None),
    ("A is tempting, but I cannot decide between B and D.", "B", "no_answer", None),
    ("Answer: A\n...on reflection...\nAnswer: B", "B", "no_answer", None),
    ("\\boxed{B} or maybe \\boxed{C}", "C", "no_answer", None),
    ("Answer: B. Both \\boxed{B} and the text agree.", "B", "correct", "B"),
    ("The correct answer is (D) because the spin is conserved.", "D", "correct", "D"),
    ("Based on the data, option C fits.", "C", "no_answer", None),
    ("", "A", "no_answer", None),
    ("Final answer: The answer is C.", "C", "correct", "C"),
    ("\\boxed{C: 2.4 eV}", "C", "correct", "C"),
    ("The answer is **B**.", "B", "correct", "B"),
]


@pytest.mark.parametrize(("text", "gold", "outcome", "extracted"), CHOICE)
def test_choice_extraction_takes_only_explicit_answers(text, gold, outcome, extracted) -> None:
    grade = grade_choice(text, gold)
    assert (grade.outcome, grade.extracted) == (outcome, extracted)
    assert grade.score == (1.0 if outcome == "correct" else 0.0)


INTEGER = [
    ("The sum is \\boxed{42}.", "42", "correct"),
    ("\\boxed{042}", "42", "correct"),
    ("Answer: 042", "42", "correct"),
    ("**Answer:** $\\boxed{1{,}024}$", "1024", "correct"),
    ("\\boxed{1,024}", "1024", "correct"),
    ("$\\boxed{\\frac{84}{2}}$", "42", "correct"),
    ("\\boxed{x = 7}", "7", "correct"),
    ("\\boxed{\\text{17}}", "17", "correct"),
    ("\\boxed{41}", "42", "wrong"),
    ("So we get 42 after all, and 17 is a distractor.", "42", "no_answer"),
    ("\\boxed{12} or \\boxed{15}", "15", "no_answer"),
    ("\\boxed{15} so \\boxed{15}", "15", "correct"),
    ("\\boxed{\\dfrac{3}{4}}", "42", "wrong"),
    ("\\boxed{2^{10}}", "1024", "correct"),
    ("\\boxed{75\\%}", "75", "correct"),
    ("**Final Answer**\n\n\\[\n\\boxed{336}\n\\]", "336", "correct"),
]


@pytest.mark.parametrize(("text", "gold", "outcome"), INTEGER)
def test_integer_answers_read_from_latex(text, gold, outcome) -> None:
    assert grade_integer(text, gold).outcome == outcome


def test_boxed_keeps_nested_braces() -> None:
    assert boxed_contents("so \\boxed{\\frac{\\sqrt{3}}{2}} and \\boxed{x^{2}}") == [
        "\\frac{\\sqrt{3}}{2}",
        "x^{2}",
    ]


MATH = [
    ("\\boxed{\\frac{1}{2}}", "0.5", "correct"),
    ("\\boxed{\\dfrac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", "correct"),
    ("Answer: $2\\pi$", "2\\pi", "correct"),
    ("\\boxed{\\pi}", "2\\pi", "wrong"),
    ("\\boxed{(x+1)^2}", "x^2+2x+1", "correct"),
    ("I believe the expression simplifies nicely.", "1", "no_answer"),
]


@pytest.mark.parametrize(("text", "gold", "outcome"), MATH)
def test_math_answers_compared_by_value(text, gold, outcome) -> None:
    assert grade_math(text, gold).outcome == outcome


def test_numeric_tolerance_and_formats() -> None:
    assert grade_numeric("Answer: 3.50", "3.5").outcome == "correct"
    assert grade_numeric("Answer: \\$1,250", "1250").outcome == "correct"
    assert grade_numeric("Answer: 0.3333333334", "1/3").outcome == "correct"
    assert grade_numeric("Answer: 0.34", "1/3").outcome == "wrong"
    assert grade_numeric("About three.", "3").outcome == "no_answer"


def test_exact_ignores_case_and_markup_only() -> None:
    assert grade_exact("Answer: **Paris**.", "paris").outcome == "correct"
    assert grade_exact("Paris", "Paris").outcome == "correct"
    assert grade_exact("Answer: Lyon", "Paris").outcome == "wrong"
    assert (
        grade_exact("I would say the capital is Paris but I am unsure of it all", "Paris").outcome
        == "no_answer"
    )


def test_math_equal_works_off_the_main_thread() -> None:
    # math-verify's timeout needs the main thread; elsewhere a worker process checks.
    results = []
    thread = threading.Thread(target=lambda: results.append(math_equal("\\frac{1}{2}", "0.5")))
    thread.start()
    thread.join(60)
    assert results == [True]
