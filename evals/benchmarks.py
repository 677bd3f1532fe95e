"""The benchmarks: where their data lives, how a question is asked, how a reply is graded.

Each benchmark turns data rows into samples (one per item and repeat) and grades the final
answer of a sample. Published gpt-oss scores (model card, Table 3) sit beside each one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from evals.data import SAMPLES, DataError, load_records
from evals.grading import GRADERS, LETTERS, Grade, grade_choice, grade_integer
from runtime.nano import HELDOUT
from tools.base import validation_problems

if TYPE_CHECKING:
    from evals.healthbench import RubricGrader

EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class Sample:
    """One question as asked in one repeat. `history` holds earlier (role, text) turns of a
    multi-turn prompt; `task` is the last user message."""

    benchmark: str
    item_id: str
    repeat: int
    task: str
    gold: str
    history: tuple[tuple[str, str], ...] = ()
    rubric: tuple[dict[str, Any], ...] = ()
    grader: str = ""
    letters: str = LETTERS


@dataclass(frozen=True)
class Published:
    """Model-card scores (%) at low / medium / high effort."""

    gpt_oss_120b: tuple[float, float, float]
    gpt_oss_20b: tuple[float, float, float]

    def at(self, effort: str) -> dict[str, float]:
        i = EFFORTS.index(effort)
        return {"gpt-oss-120b": self.gpt_oss_120b[i], "gpt-oss-20b": self.gpt_oss_20b[i]}


@dataclass
class Benchmark:
    """A benchmark: its public files (`sources`), our sample file, and published scores
    without and with tools (`tools` names the tools that make sense for it)."""

    name: str
    title: str
    sources: tuple[str, ...]
    sample_file: str
    tools: tuple[str, ...] = ()
    published: Published | None = None
    published_with_tools: Published | None = None
    needs_grader: bool = False
    items_: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def load(self, data: str | Sequence[str] | None = None, *, sample: bool = False) -> None:
        """Read the items: from `data` (paths or URLs), our sample file, or the public files."""
        if sample and self.sample_file:
            sources: Sequence[str] = [str(SAMPLES / self.sample_file)]
        elif data is not None:
            sources = [data] if isinstance(data, str) else data
        else:
            sources = self.sources
        rows = [row for source in sources for row in load_records(source)]
        if not rows:
            raise DataError(f"{self.name}: no rows in {', '.join(map(str, sources))}")
        self.items_ = [self.item(row, i) for i, row in enumerate(rows)]

    @property
    def items(self) -> list[dict[str, Any]]:
        if not self.items_:
            self.load()
        return self.items_

    def published_at(self, effort: str, tools: Sequence[str] = ()) -> dict[str, float]:
        """The model card's scores for a run at `effort` with `tools`: its "with tools" row
        only when the run had the tool the card used (python for AIME, browser for GPQA)."""
        if not tools:
            table = self.published
        elif set(tools) & set(self.tools):
            table = self.published_with_tools
        else:
            table = None
        return table.at(effort) if table is not None else {}

    # -- per benchmark --------------------------------------------------------------------

    def item(self, row: dict[str, Any], index: int) -> dict[str, Any]:
        """A data row as {"id", "question", "answer", ...}."""
        raise NotImplementedError

    def sample(self, item: dict[str, Any], repeat: int, seed: int = 0) -> Sample:
        raise NotImplementedError

    async def grade(self, sample: Sample, answer: str, rubric: RubricGrader | None) -> Grade:
        raise NotImplementedError


def _choices_text(choices: Sequence[str], letters: str = LETTERS) -> str:
    return "\n".join(f"({letter}) {text}" for letter, text in zip(letters, choices, strict=False))


CHOICE_INSTRUCTION = (
    "Express your final answer as the corresponding option 'A', 'B', 'C', or 'D', "
    "on a last line of the form 'Answer: X'."
)
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class GPQA(Benchmark):
    """GPQA Diamond: four choices, shuffled afresh for every repeat (seeded, reproducible)."""

    def item(self, row, index):
        choices = [row["Correct Answer"]] + [row[f"Incorrect Answer {n}"] for n in (1, 2, 3)]
        return {
            "id": row.get("Record ID") or str(index),
            "question": row["Question"],
            "choices": [c.strip() for c in choices],
        }

    def sample(self, item, repeat, seed=0):
        order = list(range(4))
        random.Random(f"{seed}:{item['id']}:{repeat}").shuffle(order)
        choices = [item["choices"][i] for i in order]
        gold = LETTERS[order.index(0)]
        task = f"{item['question'].strip()}\n\n{_choices_text(choices)}\n\n{CHOICE_INSTRUCTION}"
        return Sample(self.name, item["id"], repeat, task, gold, grader="choice")

    async def grade(self, sample, answer, rubric):
        return grade_choice(answer, sample.gold)


class MMLU(Benchmark):
    """MMLU (simple-evals' csv: Question, A-D, Answer, Subject)."""

    def item(self, row, index):
        return {
            "id": f"{row.get('Subject', 'mmlu')}-{index}",
            "question": row["Question"],
            "choices": [row[k] for k in "ABCD"],
            "answer": row["Answer"].strip(),
        }

    def sample(self, item, repeat, seed=0):
        choices = _choices_text(item["choices"])
        task = f"{item['question'].strip()}\n\n{choices}\n\n{CHOICE_INSTRUCTION}"
        return Sample(self.name, item["id"], repeat, task, item["answer"], grader="choice")

    async def grade(self, sample, answer, rubric):
        return grade_choice(answer, sample.gold)


class AIME(Benchmark):
    """AIME: integer answers 0-999, asked for in `\\boxed{}`."""

    def item(self, row, index):
        question = row.get("problem") or row.get("question") or row.get("Problem")
        answer = row.get("answer", row.get("Answer"))
        if question is None or answer is None:
            raise DataError(f"{self.name}: row {index} has no problem/question or answer field")
        item_id = row.get("id", row.get("ID"))
        return {
            "id": str(index if item_id is None else item_id),
            "question": str(question),
            "answer": str(answer).strip(),
        }

    def sample(self, item, repeat, seed=0):
        task = f"{item['question'].strip()}\n{BOXED_INSTRUCTION}"
        return Sample(self.name, item["id"], repeat, task, item["answer"], grader="integer")

    async def grade(self, sample, answer, rubric):
        return grade_integer(answer, sample.gold)


class HealthBench(Benchmark):
    """HealthBench: multi-turn conversations graded against physician-written rubrics by a
    grader model, which sees the conversation and the final answer only."""

    def item(self, row, index):
        turns = [(m["role"], m["content"]) for m in row["prompt"]]
        if not turns or turns[-1][0] != "user":
            raise DataError(f"{self.name}: prompt {index} does not end with a user message")
        return {"id": row.get("prompt_id") or str(index), "turns": turns, "rubric": row["rubrics"]}

    def sample(self, item, repeat, seed=0):
        *history, (_, task) = item["turns"]
        return Sample(
            self.name,
            item["id"],
            repeat,
            task,
            gold="",
            history=tuple(history),
            rubric=tuple(item["rubric"]),
            grader="rubric",
        )

    async def grade(self, sample, answer, rubric):
        if rubric is None:
            raise ValueError(
                f"{self.name} needs a grader model (grader_model=... / --grader-model)"
            )
        return await rubric.grade(sample, answer)


class UserItem(BaseModel):
    """One line of a user's JSONL benchmark."""

    model_config = ConfigDict(extra="allow")

    question: str
    answer: str
    grader: Literal["exact", "numeric", "math", "choice"] = "exact"
    id: str | None = None
    choices: list[str] | None = None
    # Replaces the default line asking for an explicit answer ("" for none).
    format_instructions: str | None = None

    @field_validator("answer", "id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


DEFAULT_FORMAT = {
    "exact": "End your reply with a last line of the form 'Answer: <your answer>'.",
    "numeric": "End your reply with a last line of the form 'Answer: <number>'.",
    "math": BOXED_INSTRUCTION,
    "choice": "Answer with the letter of the correct option, on a last line 'Answer: X'.",
}


class UserJSONL(Benchmark):
    """A user's JSONL: `question`, `answer`, `grader` (exact, numeric, math, choice), and
    optionally `id`, `choices` (a list; the answer is a letter or the right choice's text)
    and `format_instructions`."""

    def item(self, row, index):
        try:
            parsed = UserItem.model_validate(row)
        except ValidationError as exc:
            raise DataError(
                f"{self.name}: line {index + 1} is not a benchmark item "
                f"({validation_problems(exc)}); each line needs 'question' and 'answer', "
                "and may set 'grader' (exact, numeric, math, choice), 'id', 'choices'"
            ) from None
        answer = parsed.answer.strip()
        letters = LETTERS
        if parsed.choices:
            letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(parsed.choices)]
            if parsed.grader != "choice":
                raise DataError(f"{self.name}: line {index + 1} has choices: use grader 'choice'")
            if answer in parsed.choices:
                answer = letters[parsed.choices.index(answer)]
        if parsed.grader == "choice" and (len(answer) != 1 or answer.upper() not in letters):
            raise DataError(
                f"{self.name}: line {index + 1}: a choice answer must be one of the letters "
                f"{', '.join(letters)} (or the text of one of the choices)"
            )
        return {
            "id": parsed.id or str(index),
            "question": parsed.question,
            "answer": answer,
            "grader": parsed.grader,
            "choices": parsed.choices or [],
            "letters": letters,
            "format": parsed.format_instructions,
        }

    def sample(self, item, repeat, seed=0):
        parts = [item["question"].strip()]
        if item["choices"]:
            parts.append(_choices_text(item["choices"], item["letters"]))
        instructions = item["format"]
        if instructions is None:
            instructions = DEFAULT_FORMAT[item["grader"]]
        if instructions:
            parts.append(instructions)
        return Sample(
            self.name,
            item["id"],
            repeat,
            "\n\n".join(parts),
            item["answer"],
            grader=item["grader"],
            letters=item["letters"],
        )

    async def grade(self, sample, answer, rubric):
        if sample.grader == "choice":
            return grade_choice(answer, sample.gold, sample.letters)
        return GRADERS[sample.grader](answer, sample.gold)


_BLOB = "https://openaipublic.blob.core.windows.net/simple-evals"
_HF = "https://huggingface.co/datasets"


def _builtin() -> dict[str, Benchmark]:
    aime25 = Published((50.4, 80.0, 92.5), (37.1, 72.1, 91.7))
    aime25_tools = Published((72.9, 91.6, 97.9), (57.5, 90.4, 98.7))
    health = Published((53.0, 55.9, 57.6), (40.4, 41.8, 42.5))
    return {
        b.name: b
        for b in [
            GPQA(
                "gpqa",
                "GPQA Diamond",
                (f"{_BLOB}/gpqa_diamond.csv",),
                "gpqa_sample.csv",
                ("browser",),
                Published((67.1, 73.1, 80.1), (56.8, 66.0, 71.5)),
                Published((68.1, 73.5, 80.9), (58.0, 67.1, 74.2)),
            ),
            AIME(
                "aime24",
                "AIME 2024",
                (f"{_HF}/HuggingFaceH4/aime_2024/resolve/main/data/train-00000-of-00001.parquet",),
                "aime2024_sample.parquet",
                ("python",),
                Published((56.3, 80.4, 95.8), (42.1, 80.0, 92.1)),
                Published((75.4, 87.9, 96.6), (61.2, 86.0, 96.0)),
            ),
            AIME(
                "aime25",
                "AIME 2025",
                (
                    f"{_HF}/opencompass/AIME2025/raw/main/aime2025-I.jsonl",
                    f"{_HF}/opencompass/AIME2025/raw/main/aime2025-II.jsonl",
                ),
                "aime2025_sample.jsonl",
                ("python",),
                aime25,
                aime25_tools,
            ),
            HealthBench(
                "healthbench",
                "HealthBench",
                (f"{_BLOB}/healthbench/2025-05-07-06-14-12_oss_eval.jsonl",),
                "healthbench_sample.jsonl",
                (),
                health,
                needs_grader=True,
            ),
            HealthBench(
                "healthbench_hard",
                "HealthBench Hard",
                (f"{_BLOB}/healthbench/hard_2025-05-08-21-00-10.jsonl",),
                "healthbench_sample.jsonl",
                needs_grader=True,
            ),
            HealthBench(
                "healthbench_consensus",
                "HealthBench Consensus",
                (f"{_BLOB}/healthbench/consensus_2025-05-09-20-00-46.jsonl",),
                "healthbench_sample.jsonl",
                needs_grader=True,
            ),
            # The bundled demo model's task family: held-out tasks it was never trained on.
            UserJSONL("nano", "nano's tasks (held-out)", (str(HELDOUT),), "", ("python",)),
            MMLU(
                "mmlu",
                "MMLU",
                (f"{_BLOB}/mmlu.csv",),
                "mmlu_sample.csv",
                (),
                Published((85.9, 88.0, 90.0), (80.4, 84.0, 85.3)),
            ),
        ]
    }


BENCHMARK_NAMES = tuple(_builtin())


def published_scores(name: str, effort: str, tools: Sequence[str] = ()) -> dict[str, float]:
    """Model-card scores for a built-in benchmark at one effort; {} for anything else."""
    benchmark = _builtin().get(name)
    if benchmark is None or effort not in EFFORTS:
        return {}
    return benchmark.published_at(effort, tools)


def get_benchmark(name: str) -> Benchmark:
    """A fresh benchmark by name, or a user's JSONL file by its path."""
    builtin = _builtin()
    if name in builtin:
        return builtin[name]
    if name.endswith(".jsonl") or Path(name).exists():
        path = Path(name).expanduser()
        if not path.exists():
            raise DataError(f"no such benchmark file: {path}")
        return UserJSONL(path.stem, path.stem, (str(path),), "")
    raise ValueError(
        f"unknown benchmark {name!r}: choose from {', '.join(BENCHMARK_NAMES)} "
        "or give the path of a JSONL file (question, answer, grader)"
    )
