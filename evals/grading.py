"""Reading the answer out of what a model wrote, and scoring it.

No guessing: an answer is taken only from an explicit statement (`\\boxed{}`, an
`Answer:` line, "the answer is X", or a reply that is nothing but the answer). When
nothing explicit is there the sample is "no answer", kept apart from "wrong"; when
explicit statements disagree (`\\boxed{12}` ... `\\boxed{15}`) it is "no answer" too.
A reply cut short by a limit is "truncated" and never graded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Outcome = Literal["correct", "wrong", "no_answer", "truncated", "error"]
# Outcomes a sample can end with, in report order.
OUTCOMES: tuple[Outcome, ...] = ("correct", "wrong", "no_answer", "truncated", "error")
LETTERS = "ABCD"


@dataclass(frozen=True)
class Grade:
    """How one reply scored. `score` is 1 / 0 for right / wrong (a fraction for rubric
    grading); None for errors, which are never counted as scores."""

    outcome: Outcome
    score: float | None
    extracted: str | None = None
    detail: str = ""


def no_answer(detail: str) -> Grade:
    return Grade("no_answer", 0.0, None, detail)


def right_or_wrong(ok: bool, extracted: str) -> Grade:
    return Grade("correct" if ok else "wrong", 1.0 if ok else 0.0, extracted)


# -- finding explicit answer statements ---------------------------------------------------

_ANSWER_LINE = re.compile(
    r"(?im)^[\s>#*_-]*(?:the\s+)?(?:final\s+|correct\s+)?answer[\s*_]*(?:is)?[\s*_]*[:：]"
    r"[\s*_]*(?P<answer>.+?)[\s*_]*$"
)
_ANSWER_IS = re.compile(
    r"(?i)\b(?:final|correct|right)?\s*answer\s+(?:is|would\s+be|=)\s*[:：]?\s*"
    r"(?!not\b)(?P<answer>[^\n]+?)(?:[.;,]\s|[.;,]?\s*$|\n)"
)
_BOLD = re.compile(r"\*\*(?P<answer>[^*\n]+?)\*\*|__(?P<answer2>[^_\n]+?)__")


def boxed_contents(text: str) -> list[str]:
    """Every `\\boxed{...}` / `\\fbox{...}` body, nested braces kept balanced."""
    found: list[str] = []
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[start:i])
                    break
    return found


def answer_statements(text: str) -> list[list[str]]:
    """Candidate answers by how explicit they are: boxed values and `Answer:` lines, then
    "the answer is X", then a reply that is only the answer (or its one bold span)."""
    lines = [m["answer"] for m in _ANSWER_LINE.finditer(text)]
    # "Answer: \boxed{42}" states one answer: its box is already counted.
    explicit = boxed_contents(text) + [a for a in lines if not re.search(r"\\(?:boxed|fbox)", a)]
    stated = [m["answer"] for m in _ANSWER_IS.finditer(text)]
    bare: list[str] = []
    stripped = text.strip()
    if stripped and len(stripped) <= 40 and "\n" not in stripped:
        bare.append(stripped)
    bolds = [m["answer"] or m["answer2"] for m in _BOLD.finditer(text)]
    if len(bolds) == 1:
        bare.append(bolds[0])
    return [explicit, stated, bare]


def extract(text: str, normalize: Callable[[str], str | None]) -> tuple[str | None, str]:
    """The answer `normalize` accepts from the most explicit statements, or None and why.

    Candidates `normalize` rejects (prose, "not A") are skipped; if the accepted ones at
    the most explicit level disagree, there is no answer."""
    for level in answer_statements(text):
        values = [v for v in (normalize(c) for c in level) if v is not None]
        distinct = list(dict.fromkeys(values))
        if len(distinct) == 1:
            return distinct[0], ""
        if len(distinct) > 1:
            return None, "several different answers: " + ", ".join(distinct)
    return None, "no explicit answer found"


# -- normalizing what was found -----------------------------------------------------------

_LATEX_WRAPPERS = re.compile(
    r"\\(?:text|textbf|textrm|mathrm|mathbf|mathit|mbox|operatorname|bf|rm)\s*\{([^{}]*)\}"
)


def strip_markup(text: str) -> str:
    """Markdown emphasis, `$` math delimiters and LaTeX text wrappers removed."""
    previous = None
    while previous != text:
        previous, text = text, _LATEX_WRAPPERS.sub(r"\1", text)
    text = re.sub(r"\\[()\[\]]", "", text)
    text = (
        text.replace("\\$", "")
        .replace("$", "")
        .replace("**", "")
        .replace("__", "")
        .replace("`", "")
    )
    return text.strip().strip("*_ ").strip()


def normalize_choice(candidate: str, letters: str = LETTERS) -> str | None:
    """`C`, `(C)`, `C.`, `C) 42 kg`, `Option C`, `\\text{C}` -> "C"; prose -> None."""
    text = strip_markup(candidate)
    text = re.sub(r"(?i)^(?:option|choice)\s+", "", text)
    match = re.match(rf"^\(?([{letters}])(?:\)|[.:]|$)", text)
    if match is None:
        return None
    return match.group(1)


def normalize_number(candidate: str) -> str | None:
    """A number as a canonical string: `042` -> "42", `1{,}024` / `1,024` -> "1024",
    `\\$3.50` -> "3.5", `x = 7` -> "7", `\\frac{3}{4}` / `3/4` -> "3/4"; else None."""
    text = strip_markup(candidate)
    text = text.split("=")[-1]
    text = re.sub(r"\\[,;!: ]|\{,\}|\\\$|\\%|%|\^\{?\\circ\}?|\\circ|\\left|\\right", "", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").strip().rstrip(".")
    text = re.sub(
        r"^(-?\d{1,3})((?:,\d{3})+)(?=\.|$)", lambda m: m[1] + m[2].replace(",", ""), text
    )
    text = text.replace(" ", "")
    frac = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}|(-?\d+)/(\d+)", text)
    try:
        if frac:
            sign, num, den = (frac[1], frac[2], frac[3]) if frac[2] else ("", frac[4], frac[5])
            value = Fraction(int(num), int(den)) * (-1 if sign else 1)
        elif re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text):
            value = Fraction(text)
        else:
            return None
    except (ValueError, ZeroDivisionError):
        return None
    return str(value)


def normalize_text(candidate: str) -> str | None:
    """Case, spacing, markup and a trailing full stop ignored."""
    text = " ".join(strip_markup(candidate).casefold().split()).rstrip(".").strip("\"'")
    return text or None


# -- math equivalence (math-verify) -------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def math_equal(gold: str, predicted: str, timeout: int = 5) -> bool:
    """Whether two expressions are equal, per math-verify (LaTeX or plain).

    math-verify bounds its work with `signal.alarm`, which only works on the main thread:
    from any other thread the check runs in a worker process instead."""
    if threading.current_thread() is threading.main_thread():
        return _math_verify(gold, predicted, timeout)
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1)
    return _pool.submit(_math_verify, gold, predicted, timeout).result()


def _math_verify(gold: str, predicted: str, timeout: int) -> bool:
    from math_verify import parse, verify

    try:
        gold_parsed = parse(f"${gold}$", parsing_timeout=timeout)
        predicted_parsed = parse(f"${predicted}$", parsing_timeout=timeout)
        return bool(gold_parsed and predicted_parsed) and verify(
            gold_parsed, predicted_parsed, timeout_seconds=timeout
        )
    except Exception:  # math-verify raises on some inputs and on timeouts: not equal
        return False


# -- graders: final answer text + gold -> Grade ------------------------------------------


def grade_choice(text: str, gold: str, letters: str = LETTERS) -> Grade:
    """Multiple choice: a single letter out of `letters`."""
    letter, why = extract(text, lambda c: normalize_choice(c, letters))
    if letter is None:
        return no_answer(why)
    return right_or_wrong(letter == gold.strip().upper(), letter)


def grade_math(text: str, gold: str) -> Grade:
    """A number or an expression: numbers compare exactly (`042` = 42, `0.5` = 1/2),
    anything else through math-verify."""
    answer, why = extract(text, _math_candidate)
    if answer is None:
        return no_answer(why)
    gold_number, number = normalize_number(gold), normalize_number(answer)
    if gold_number is not None and number is not None:
        return right_or_wrong(gold_number == number, number)
    return right_or_wrong(math_equal(gold, answer), answer)


def grade_integer(text: str, gold: str) -> Grade:
    """AIME: an integer (leading zeros allowed); an expression equal to it counts too."""
    return grade_math(text, gold)


def grade_numeric(text: str, gold: str, rel_tol: float = 1e-6) -> Grade:
    """A number, within a relative tolerance."""
    answer, why = extract(text, normalize_number)
    if answer is None:
        return no_answer(why)
    target = normalize_number(gold)
    if target is None:
        raise ValueError(f"the gold answer {gold!r} is not a number; use the 'exact' grader")
    a, b = Fraction(answer), Fraction(target)
    return right_or_wrong(abs(a - b) <= rel_tol * max(abs(b), Fraction(1, 10**9)), answer)


def grade_exact(text: str, gold: str) -> Grade:
    """The stated answer equals the gold one, ignoring case, spacing and markup."""
    answer, why = extract(text, normalize_text)
    if answer is None:
        return no_answer(why)
    return right_or_wrong(answer == normalize_text(gold), answer)


def _math_candidate(candidate: str) -> str | None:
    """Something that reads as a math answer: a number, or a short expression (not prose)."""
    number = normalize_number(candidate)
    if number is not None:
        return number
    text = strip_markup(candidate).rstrip(".").strip()
    words = re.findall(r"[A-Za-z]{4,}", re.sub(r"\\[A-Za-z]+", "", text))
    if not text or words or len(text) > 200:
        return None
    return text


# The graders a user's JSONL can name in its `grader` field.
GRADERS: dict[str, Callable[[str, str], Grade]] = {
    "exact": grade_exact,
    "numeric": grade_numeric,
    "math": grade_math,
    "choice": grade_choice,
}
