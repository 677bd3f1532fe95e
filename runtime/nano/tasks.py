"""The nano model's task family: arithmetic, unit conversions and small word problems.

Each task knows its question, the Python expression that answers it and how the answer is
phrased; the numbers come from the sandbox when transcripts are generated, never from here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tools.functions import FunctionTool, function_tool


@dataclass(frozen=True)
class Task:
    question: str
    code: str  # what the model sends to python
    setup: str  # one sentence of reasoning that turns the question into `code`
    final: str  # the answer; the tool's output replaces `{result}` (in bold, as graders read it)
    kind: str  # arithmetic | conversion | word
    # For conversions: the `convert_units` arguments, so the task can use the function tool.
    conversion: tuple[float, str, str] | None = None


# (from, to) -> factor; temperatures are affine and handled apart.
FACTORS = {
    ("km", "miles"): 0.621371,
    ("miles", "km"): 1.609344,
    ("kg", "pounds"): 2.204623,
    ("pounds", "kg"): 0.453592,
    ("meters", "feet"): 3.28084,
    ("feet", "meters"): 0.3048,
    ("liters", "gallons"): 0.264172,
    ("gallons", "liters"): 3.785412,
    ("inches", "cm"): 2.54,
    ("cm", "inches"): 0.393701,
    ("hours", "minutes"): 60,
    ("minutes", "seconds"): 60,
}
TEMPERATURES = {
    ("celsius", "fahrenheit"): "round({v} * 9 / 5 + 32, 2)",
    ("fahrenheit", "celsius"): "round(({v} - 32) * 5 / 9, 2)",
}
UNIT_PAIRS = [*FACTORS, *TEMPERATURES]
SINGULAR = {
    "miles": "mile",
    "pounds": "pound",
    "meters": "meter",
    "feet": "foot",
    "liters": "liter",
    "gallons": "gallon",
    "inches": "inch",
    "hours": "hour",
    "minutes": "minute",
}


def conversion_code(value: float, from_unit: str, to_unit: str) -> str:
    """The Python expression converting `value`; shared by the python path and the function."""
    if (from_unit, to_unit) in TEMPERATURES:
        return TEMPERATURES[from_unit, to_unit].format(v=value)
    return f"round({value} * {FACTORS[from_unit, to_unit]}, 3)"


@function_tool
def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a value between units (km, miles, kg, pounds, meters, feet, liters, gallons,
    inches, cm, hours, minutes, seconds, celsius, fahrenheit)."""
    if (from_unit, to_unit) not in FACTORS and (from_unit, to_unit) not in TEMPERATURES:
        raise ValueError(f"cannot convert {from_unit} to {to_unit}")
    return eval(conversion_code(value, from_unit, to_unit), {"__builtins__": {"round": round}})


FUNCTION_TOOLS: list[FunctionTool] = [convert_units]

ASK = [
    "What is {e}?",
    "Compute {e}.",
    "Calculate {e}.",
    "What's {e}?",
    "Evaluate {e}.",
    "How much is {e}?",
    "Please work out {e}.",
]
ASK_CONVERSION = [
    "Convert {v} {f} to {t}.",
    "How many {t} is {v} {f}?",
    "What is {v} {f} in {t}?",
    "Convert {v} {f} into {t}, please.",
]
NAMES = ["Tom", "Anna", "Maria", "Li", "Omar", "Sara", "Ken", "Priya", "Jonas", "Ada"]


def _arithmetic(rng: random.Random) -> Task:
    n = rng.randint
    form = rng.randrange(8)
    if form == 0:
        e = f"{n(1, 9999)} + {n(1, 9999)}"
    elif form == 1:
        a = n(1, 9999)
        e = f"{a} - {n(1, a)}"
    elif form == 2:
        e = f"{n(2, 999)} * {n(2, 999)}"
    elif form == 3:
        e = f"{n(2, 999)} * {n(2, 999)} + {n(1, 9999)}"
    elif form == 4:
        e = f"{n(2, 999)} * {n(2, 99)} - {n(1, 999)}"
    elif form == 5:
        e = f"{n(1, 999)} + {n(2, 99)} * {n(2, 999)}"
    elif form == 6:
        e = f"({n(1, 999)} + {n(1, 999)}) * {n(2, 99)}"
    else:
        b = n(2, 99)
        e = f"{b * n(2, 999)} / {b}"
    return _arithmetic_task(rng, e)


def sum_task(rng: random.Random, value: int) -> Task:
    """An addition whose result is `value` (at least 2), for answers with chosen digits."""
    a = rng.randint(1, value - 1)
    return _arithmetic_task(rng, f"{a} + {value - a}")


def _arithmetic_task(rng: random.Random, e: str) -> Task:
    return Task(
        question=rng.choice(ASK).format(e=e),
        code=e,
        setup=f"The user wants the value of {e}.",
        final=rng.choice(["{e} = **{{result}}**.", "The answer is **{{result}}**."]).format(e=e),
        kind="arithmetic",
    )


def _number(rng: random.Random) -> float | int:
    return rng.randint(1, 999) if rng.random() < 0.6 else round(rng.uniform(0.1, 999), 1)


def _conversion(rng: random.Random) -> Task:
    f, t = rng.choice(UNIT_PAIRS)
    v = _number(rng)
    if (f, t) in FACTORS:
        setup = (
            f"One {SINGULAR.get(f, f)} is {FACTORS[f, t]} {t}, so multiply {v} by {FACTORS[f, t]}."
        )
    elif f == "celsius":
        setup = f"Fahrenheit is celsius times 9/5 plus 32; here celsius is {v}."
    else:
        setup = f"Celsius is fahrenheit minus 32, times 5/9; here fahrenheit is {v}."
    return Task(
        question=rng.choice(ASK_CONVERSION).format(v=v, f=f, t=t),
        code=conversion_code(v, f, t),
        setup=setup,
        final=f"{v} {f} is **{{result}}** {t}.",
        kind="conversion",
        conversion=(v, f, t),
    )


def _word(rng: random.Random) -> Task:
    n, who = rng.randint, rng.choice(NAMES)
    form = rng.randrange(10)
    if form == 0:
        a, b = n(2, 99), n(2, 99)
        q = f"A shop sells {a} apples at {b} dollars each. How much do they cost in total?"
        return _wordtask(
            q, f"{a} * {b}", f"{a} apples at {b} dollars each.", "They cost **{result}** dollars."
        )
    if form == 1:
        a = n(10, 999)
        b = n(1, a - 1)
        q = f"{who} has {a} marbles and gives away {b}. How many marbles are left?"
        return _wordtask(
            q,
            f"{a} - {b}",
            f"{who} starts with {a} and gives away {b}.",
            f"{who} has **{{result}}** marbles left.",
        )
    if form == 2:
        h = n(2, 12)
        d = h * n(20, 150)
        q = f"A train travels {d} km in {h} hours. What is its average speed in km/h?"
        return _wordtask(
            q,
            f"{d} / {h}",
            f"Speed is distance over time: {d} km in {h} hours.",
            "Its average speed is **{result}** km/h.",
        )
    if form == 3:
        a, b, c = n(2, 99), n(2, 99), n(1, 99)
        q = (
            f"There are {a} boxes with {b} pencils each and {c} loose pencils. "
            "How many pencils are there in total?"
        )
        return _wordtask(
            q,
            f"{a} * {b} + {c}",
            f"{a} boxes of {b} pencils, plus {c} loose ones.",
            "There are **{result}** pencils.",
        )
    if form == 4:
        a, b = n(2, 999), n(2, 999)
        q = f"A rectangle is {a} m long and {b} m wide. What is its area?"
        return _wordtask(
            q,
            f"{a} * {b}",
            f"The area is length times width: {a} by {b}.",
            "Its area is **{result}** square meters.",
        )
    if form == 5:
        a, b = n(2, 999), n(2, 52)
        q = f"{who} saves {a} dollars a week for {b} weeks. How much has {who} saved?"
        return _wordtask(
            q,
            f"{a} * {b}",
            f"{a} dollars a week for {b} weeks.",
            f"{who} has saved **{{result}}** dollars.",
        )
    if form == 6:
        b = n(2, 30)
        a = b * n(2, 40)
        q = f"{a} students are split evenly into {b} groups. How many students are in each group?"
        return _wordtask(
            q,
            f"{a} // {b}",
            f"{a} students in {b} equal groups.",
            "Each group has **{result}** students.",
        )
    if form == 7:
        a = n(20, 999)
        b = n(1, a - 1)
        q = f"A book has {a} pages. {who} has read {b} pages. How many pages are left?"
        return _wordtask(
            q,
            f"{a} - {b}",
            f"{a} pages in all, {b} already read.",
            "There are **{result}** pages left.",
        )
    if form == 8:
        a, b = n(2, 250), n(2, 99)
        q = f"A ticket costs {a} dollars. How much do {b} tickets cost?"
        return _wordtask(
            q, f"{b} * {a}", f"{b} tickets at {a} dollars each.", "They cost **{result}** dollars."
        )
    a, b, c = n(2, 50), n(2, 99), n(1, 99)
    q = (
        f"{who} buys {a} pens for {b} dollars each and a notebook for {c} dollars. "
        f"How much does {who} spend?"
    )
    return _wordtask(
        q,
        f"{a} * {b} + {c}",
        f"{a} pens at {b} dollars, plus {c} for the notebook.",
        f"{who} spends **{{result}}** dollars.",
    )


def _wordtask(question: str, code: str, setup: str, final: str) -> Task:
    return Task(question=question, code=code, setup=setup, final=final, kind="word")


KINDS = {"arithmetic": _arithmetic, "conversion": _conversion, "word": _word}


def random_task(rng: random.Random) -> Task:
    """One task; the three kinds equally likely."""
    return KINDS[rng.choice(sorted(KINDS))](rng)
