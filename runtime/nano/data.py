"""Synthetic agent transcripts for the nano model, rendered as the real agent renders them.

The system and developer messages come from `agent.Agent.header_messages()` with a varying
date, effort, instructions and tool set, so training prompts match what the agent sends
token for token. Tool results are real: python code runs in the sandbox (outputs cached by
code in a JSON file), function calls run the real `FunctionTool`.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.harmony import (
    Conversation,
    HarmonyEncodingName,
    Message,
    Role,
    load_harmony_encoding,
)
from agent.loop import Agent
from runtime.engine import Engine
from runtime.nano.tasks import FUNCTION_TOOLS, Task, convert_units, random_task, sum_task
from tools.base import tool_message
from tools.python import PythonTool

EFFORTS = ("low", "medium", "high")
INSTRUCTIONS = (None, None, "Use tools when they help.", "Answer briefly.", "Be precise.")
FIRST_DATE = datetime.date(2024, 1, 1)
KERNEL_CELLS = 500
# o200k writes digits in groups of up to three from the left, so a group with a leading zero
# (004, 060) only occurs inside a number and random answers hold few of them: too few for
# the model to learn to write them. `covering_values` tops every group up.
DIGIT_GROUPS = [f"{i:0{width}d}" for width in (1, 2, 3) for i in range(10**width)]
LEADING_GROUPS = [str(i) for i in range(100, 1000)]


class _HeaderOnly(Engine):
    """The engine of an agent used only to render its header."""

    def generate(self, tokens, **sampling):  # type: ignore[override]
        raise RuntimeError("this agent only renders headers")


@dataclass(frozen=True)
class Setting:
    """What varies in the header: the agent's settings for one transcript."""

    effort: str
    date: str
    instructions: str | None
    functions: bool  # convert_units offered besides python

    def header(self) -> list[Message]:
        tools = [PythonTool(), *(FUNCTION_TOOLS if self.functions else [])]
        agent = Agent(
            _HeaderOnly(),  # only the header is rendered, nothing is sampled
            tools=tools,
            instructions=self.instructions,
            reasoning_effort=self.effort,  # type: ignore[arg-type]
            conversation_start_date=self.date,
        )
        return agent.header_messages()


def random_setting(rng: random.Random) -> Setting:
    date = FIRST_DATE + datetime.timedelta(days=rng.randrange(7 * 365))
    return Setting(
        effort=rng.choice(EFFORTS),
        date=date.isoformat(),
        instructions=rng.choice(INSTRUCTIONS),
        functions=rng.random() < 0.3,
    )


def reasoning(task: Task, effort: str, via_function: bool) -> str:
    """What the model thinks before its call: longer at higher effort."""
    tool = "the convert_units function" if via_function else "python"
    if effort == "low":
        return f"Use {tool}."
    if effort == "medium":
        return f"{task.setup} I'll compute it with {tool}."
    return (
        f"{task.setup} I need the exact number, so I'll compute it with {tool} "
        "and check the result before answering."
    )


def check(result: str, effort: str) -> str | None:
    """At high effort the model looks at the result once more before answering."""
    if effort != "high":
        return None
    return f"The tool returned {result}. That is the number the question asks for."


class PythonCache:
    """Sandbox outputs by code, kept in a JSON file so regenerating data is fast."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.outputs: dict[str, str] = {}
        if path is not None and path.exists():
            self.outputs = json.loads(path.read_text())

    def fill(self, codes: list[str]) -> None:
        """Run every code not cached yet in one sandboxed kernel."""
        missing = sorted({c for c in codes if c not in self.outputs})
        if not missing:
            return
        from tools.python import PythonSession

        # A fresh kernel every few hundred cells: IPython warns into the output once its
        # output cache (1000 entries) fills.
        for start in range(0, len(missing), KERNEL_CELLS):
            with PythonSession() as session:
                for code in missing[start : start + KERNEL_CELLS]:
                    self.outputs[code] = session.run(code)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.outputs, indent=0, sort_keys=True))


def transcript(task: Task, setting: Setting, output: str) -> Conversation:
    """One solved task: reasoning, the tool call, its real result, the answer."""
    via_function = setting.functions and task.conversion is not None
    messages = [Message.from_role_and_content(Role.USER, task.question)]
    messages.append(
        Message.from_role_and_content(
            Role.ASSISTANT, reasoning(task, setting.effort, via_function)
        ).with_channel("analysis")
    )
    if via_function:
        value, from_unit, to_unit = task.conversion  # type: ignore[misc]
        arguments = json.dumps({"value": value, "from_unit": from_unit, "to_unit": to_unit})
        call = (
            Message.from_role_and_content(Role.ASSISTANT, arguments)
            .with_channel("commentary")
            .with_recipient("functions.convert_units")
            .with_content_type("<|constrain|>json")
        )
        reply = asyncio.run(convert_units.call(call))[0]
    else:
        call = (
            Message.from_role_and_content(Role.ASSISTANT, task.code)
            .with_channel("analysis")
            .with_recipient("python")
            .with_content_type("code")
        )
        reply = tool_message(call, output, author_name="python")
    messages += [call, reply]
    result = reply.content[0].text.strip()  # type: ignore[union-attr]
    thought = check(result, setting.effort)
    if thought is not None:
        messages.append(
            Message.from_role_and_content(Role.ASSISTANT, thought).with_channel("analysis")
        )
    messages.append(
        Message.from_role_and_content(
            Role.ASSISTANT, task.final.format(result=result)
        ).with_channel("final")
    )
    return Conversation.from_messages(setting.header() + messages)


@dataclass(frozen=True)
class Example:
    task: Task
    setting: Setting
    answer: str  # the tool's output: the number the final answer states


def examples(
    count: int, seed: int, cache: PythonCache, floor: int = 0
) -> Iterator[tuple[Example, Conversation]]:
    """`count` solved tasks drawn with `seed`, their python outputs taken from the sandbox,
    then additions whose answers bring every digit group up to `floor` answers."""
    rng = random.Random(seed)
    drawn = [(random_task(rng), random_setting(rng)) for _ in range(count)]
    cache.fill([task.code for task, _ in drawn])
    if floor:
        answers = [cache.outputs[task.code] for task, _ in drawn]
        for value in covering_values(answers, floor):
            drawn.append((sum_task(rng, value), random_setting(rng)))
        cache.fill([task.code for task, _ in drawn])
    for task, setting in drawn:
        output = cache.outputs[task.code]
        if not _is_number(output.strip()):
            raise RuntimeError(f"the sandbox answered {task.code!r} with {output!r}, not a number")
        conversation = transcript(task, setting, output)
        yield Example(task, setting, output.strip()), conversation


def covering_values(answers: list[str], floor: int) -> list[int]:
    """Integers whose digit groups, added to those of `answers`, make every group of
    `DIGIT_GROUPS` occur in at least `floor` answers. Each is the least seen leading group
    (100-999) followed by the group it covers, so that group is written as its own token."""
    counts = Counter(group for answer in answers for group in digit_groups(answer))
    values = []
    for group in DIGIT_GROUPS:
        while counts[group] < floor:
            lead = min(LEADING_GROUPS, key=lambda g: (counts[g], g))
            counts[lead] += 1
            counts[group] += 1
            values.append(int(lead + group))
    return values


def digit_groups(text: str) -> list[str]:
    """The tokens of `text` made of digits only, as the model reads and writes them."""
    encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)  # tokenizer cached
    tokens = [encoding.decode([token]) for token in encoding.encode(text)]
    return [token for token in tokens if token.isdigit()]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_conversations(
    path: Path, count: int, seed: int, cache: PythonCache, floor: int = 0
) -> Path:
    """A JSONL of harmony conversations (the input `runtime.train` reads): see `examples`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for _, conversation in examples(count, seed, cache, floor):
            out.write(conversation.to_json() + "\n")
    return path


def write_headerless(source: Path, path: Path) -> Path:
    """The conversations of `source` without their system and developer messages: short
    sequences where what the model must copy is near and little else is, for a first
    training phase (copying numbers is learned there in a few hundred steps; behind the
    ~250-token header it was not learned in 600)."""
    header = (Role.SYSTEM, Role.DEVELOPER)
    with source.open() as lines, path.open("w") as out:
        for line in lines:
            messages = Conversation.from_json(line).messages
            kept = [m for m in messages if m.author.role not in header]
            out.write(Conversation.from_messages(kept).to_json() + "\n")
    return path


def write_heldout(
    path: Path, count: int, seed: int, cache: PythonCache, exclude: set[str] = frozenset()
) -> Path:
    """Held-out tasks as the evals package's user JSONL (question, answer, grader, no
    format line), none of them a question in `exclude` (the training set's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for example, _ in examples(count + count // 4, seed, cache):
        if example.task.question not in exclude and len(rows) < count:
            rows.append(
                {
                    "question": example.task.question,
                    "answer": example.answer,
                    "grader": "numeric",
                    # Asked as in training: nano answers in bold, which the grader reads.
                    "format_instructions": "",
                }
            )
    if len(rows) < count:
        raise RuntimeError(f"only {len(rows)} held-out tasks differ from the training ones")
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def questions(path: Path) -> set[str]:
    """The user questions of a JSONL of conversations."""
    with path.open() as lines:
        return {
            message.text
            for line in lines
            for message in Conversation.from_json(line).messages
            if message.author.role == Role.USER
        }
