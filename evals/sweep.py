"""The sweep: benchmarks x efforts x repeats through `agent.Agent`, recorded as it goes.

Each sample runs as its own agent (with real tools when asked), is graded, and is
appended to the run folder before the next result counts. A preflight request checks the
engine first: a permanent failure (bad URL, 401, 404) stops the run before any sample; a
transient one (connection, 408, 409, 429, 5xx) is retried a bounded number of times, in
the preflight and for each sample, and a sample that still fails is recorded as an error,
never as a score.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.harmony import Message, Role
from agent.loop import Agent, load_engine, parse_effort
from evals.benchmarks import Benchmark, Sample, get_benchmark
from evals.data import DataError
from evals.grading import Grade
from evals.healthbench import GraderError, RubricGrader
from evals.retry import is_transient
from evals.store import RunSettings, RunStore

if TYPE_CHECKING:
    from runtime.engine import Engine
    from tools.base import Tool


class EngineUnusable(RuntimeError):
    """The preflight request failed in a way retrying cannot fix."""


@dataclass
class Progress:
    """What the progress bar shows: done / total, accuracy so far, tokens/s, ETA."""

    total: int
    done: int = 0
    skipped: int = 0
    score_sum: float = 0.0
    scored: int = 0
    errors: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    last: dict[str, Any] | None = None  # the latest sample's record

    @property
    def accuracy(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None

    @property
    def tokens_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.completion_tokens / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        ran = self.done - self.skipped
        if ran <= 0:
            return None
        return (time.monotonic() - self.started) / ran * (self.total - self.done)

    def add(self, record: dict[str, Any]) -> None:
        self.last = record
        self.done += 1
        self.completion_tokens += record["usage"]["completion_tokens"]
        if record["outcome"] == "error":
            self.errors += 1
        else:
            self.scored += 1
            self.score_sum += record["score"]


class _RecordingEngine:
    """Passes `generate` through and keeps the exception an engine raised: the agent turns
    it into text, and the sweep needs the error itself to decide whether to retry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.error: BaseException | None = None

    def generate(self, tokens: Sequence[int], **options: Any) -> Iterator[int]:
        try:
            yield from self.engine.generate(tokens, **options)
        except Exception as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def preflight(engine: Engine, *, retries: int = 2, backoff: float = 1.0, name: str = "") -> None:
    """One tiny request (one token) before the run: fail fast with a clear reason."""
    from agent.harmony import HarmonyEncodingName, load_harmony_encoding

    encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    prompt = encoding.encode(
        "<|start|>user<|message|>Say OK.<|end|><|start|>assistant", allowed_special="all"
    )
    for attempt in range(retries + 1):
        try:
            for _ in engine.generate(prompt, max_tokens=1, temperature=0.0):
                break
            return
        except Exception as exc:
            if not is_transient(exc) or attempt == retries:
                kind = "failed" if is_transient(exc) else "failed permanently"
                raise EngineUnusable(
                    f"the preflight request to {name or type(engine).__name__} {kind}: {exc}"
                ) from exc
            time.sleep(backoff * 2**attempt)


def sample_seed(seed: int, effort: str, sample: Sample) -> int:
    text = f"{seed}:{sample.benchmark}:{sample.item_id}:{sample.repeat}:{effort}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1


def _history(turns: Sequence[tuple[str, str]]) -> list[Message]:
    messages = []
    for role, text in turns:
        message = Message.from_role_and_content(Role(role), text)
        messages.append(message.with_channel("final") if role == "assistant" else message)
    return messages


def _transcript(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [
        {
            "role": m.author.role.value,
            "name": m.author.name,
            "channel": m.channel,
            "recipient": m.recipient,
            "text": m.text,
        }
        for m in messages
        if m.author.role not in (Role.SYSTEM, Role.DEVELOPER)
    ]


class Sweep:
    """One run: settings, a folder, an engine; `arun` does what is not done yet."""

    def __init__(
        self,
        settings: RunSettings,
        out: str | Path,
        *,
        engine: Engine | None = None,
        grader_engine: Engine | None = None,
        tools: Callable[[], list[Tool]] | None = None,
        concurrency: int | None = None,
        retries: int = 2,
        backoff: float = 1.0,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = RunStore(out)
        # Engines given as objects are used as they are; the ones named by `settings` load
        # only once the plan is known to be good (a bad flag must not wait for weights), and
        # are closed at the end of `run`.
        self.engine = engine
        self.grader_engine = grader_engine
        self._owned: list[Engine] = []
        self.tools = tools or self._builtin_tools
        self.concurrency = concurrency
        self.retries = retries
        self.backoff = backoff
        self.on_progress = on_progress
        self.benchmarks = [get_benchmark(name) for name in settings.benchmarks]

    def _open_engines(self) -> None:
        if self.engine is None:
            self.engine = load_engine(self.settings.model)
            self._owned.append(self.engine)
        if self.grader_engine is None and self.settings.grader_model:
            self.grader_engine = load_engine(self.settings.grader_model)
            self._owned.append(self.grader_engine)

    def _builtin_tools(self) -> list[Tool]:
        """Fresh tools per sample (a new python kernel each time); the browser backend comes
        from the settings, the environment or the config file, as for `oss-agent run`."""
        from agent.config import load_settings, make_tools

        flags = {"tools": self.settings.tools, "browser_backend": self.settings.browser_backend}
        return make_tools(self.settings.tools, load_settings(flags))

    async def _check_tools(self) -> None:
        """Tools that cannot even be made (unknown name, missing API key) stop the run."""
        try:
            tools = self.tools()
        except Exception as exc:
            raise ValueError(f"the tools {self.settings.tools} cannot be used: {exc}") from exc
        for tool in tools:
            await tool.aclose()

    def plan(self) -> list[tuple[Benchmark, str, Sample]]:
        """Every sample of the run, in order (done ones included)."""
        for effort in self.settings.efforts:
            parse_effort(effort)  # an unknown effort stops the run here, not per sample
        plan = []
        for benchmark in self.benchmarks:
            benchmark.load(self.settings.data.get(benchmark.name), sample=self.settings.sample_data)
            items = benchmark.items[: self.settings.limit]
            ids = [item["id"] for item in items]
            if len(set(ids)) != len(ids):
                raise DataError(f"{benchmark.name}: item ids repeat; every item needs its own id")
            if benchmark.needs_grader and not (self.grader_engine or self.settings.grader_model):
                raise ValueError(
                    f"{benchmark.name} is graded by a grader model: pass grader_model= "
                    "(--grader-model PATH|URL)"
                )
            for effort in self.settings.efforts:
                for repeat in range(self.settings.repeats):
                    for item in items:
                        sample = benchmark.sample(item, repeat, self.settings.seed)
                        plan.append((benchmark, effort, sample))
        return plan

    async def arun(self) -> Progress:
        plan = self.plan()
        self.store.begin(self.settings)
        done = self.store.done()
        todo = [
            (b, effort, s)
            for b, effort, s in plan
            if (b.name, effort, s.item_id, s.repeat) not in done
        ]
        progress = Progress(total=len(plan), done=len(plan) - len(todo))
        progress.skipped = progress.done
        if self.on_progress is not None:
            self.on_progress(progress)
        if not todo:
            return progress
        await self._check_tools()
        self._open_engines()
        # Servers are checked before any sample; a local engine failed already at load.
        if _is_remote(self.engine):
            await asyncio.to_thread(
                preflight,
                self.engine,
                retries=self.retries,
                backoff=self.backoff,
                name=self.settings.model,
            )
        needs_grader = any(b.needs_grader for b, _, _ in todo)
        if _is_remote(self.grader_engine) and needs_grader:
            await asyncio.to_thread(
                preflight,
                self.grader_engine,
                retries=self.retries,
                backoff=self.backoff,
                name=self.settings.grader_model or "the grader model",
            )
        rubric = RubricGrader(self.grader_engine) if self.grader_engine is not None else None
        # A local model holds one KV cache: its samples run one at a time.
        gate = asyncio.Semaphore((self.concurrency or 8) if _is_remote(self.engine) else 1)

        async def one(benchmark: Benchmark, effort: str, sample: Sample) -> None:
            async with gate:
                record = await self.run_sample(benchmark, effort, sample, rubric)
            self.store.append(record)
            progress.add(record)
            if self.on_progress is not None:
                self.on_progress(progress)

        await asyncio.gather(*(one(*job) for job in todo))
        return progress

    def run(self) -> Progress:
        try:
            return asyncio.run(self.arun())
        finally:
            for engine in self._owned:
                close = getattr(engine, "close", None)
                if close is not None:
                    close()

    async def run_sample(
        self, benchmark: Benchmark, effort: str, sample: Sample, rubric: RubricGrader | None
    ) -> dict[str, Any]:
        """Run, retry while the failure is transient, grade; always returns a record."""
        for attempt in range(1, self.retries + 2):
            engine = _RecordingEngine(self.engine)
            started = time.monotonic()
            try:
                agent = Agent(
                    engine,
                    tools=self.tools(),
                    reasoning_effort=effort,
                    max_turns=self.settings.max_turns,
                    max_tokens_per_turn=self.settings.max_tokens,
                    temperature=self.settings.temperature,
                    seed=sample_seed(self.settings.seed, effort, sample),
                )
                agent.messages = _history(sample.history)
                async with agent:
                    result = await agent.arun(sample.task)
            except Exception as exc:  # a tool that could not start, a bad setting
                grade = Grade("error", None, None, f"{type(exc).__name__}: {exc}")
                return self._record(benchmark, effort, sample, grade, None, attempt, started)
            if result.stop_reason == "error":
                error = engine.error or RuntimeError(result.error or "unknown error")
                if is_transient(error) and attempt <= self.retries:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                grade = Grade("error", None, None, result.error or str(error))
            elif result.stop_reason != "final":
                grade = Grade("truncated", 0.0, None, f"stopped: {result.stop_reason}")
            else:
                try:
                    grade = await benchmark.grade(sample, result.final_output, rubric)
                except GraderError as exc:
                    grade = Grade("error", None, None, str(exc))
            return self._record(benchmark, effort, sample, grade, result, attempt, started)
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, benchmark, effort, sample, grade, result, attempts, started):
        usage = result.usage if result is not None else None
        return {
            "benchmark": benchmark.name,
            "effort": effort,
            "item": sample.item_id,
            "repeat": sample.repeat,
            "outcome": grade.outcome,
            "score": grade.score,
            "extracted": grade.extracted,
            "gold": sample.gold,
            "detail": grade.detail,
            "tools": list(self.settings.tools),
            "stop_reason": result.stop_reason if result is not None else "error",
            "error": grade.detail if grade.outcome == "error" else None,
            "attempts": attempts,
            "seconds": round(time.monotonic() - started, 4),
            "usage": {
                "prompt_tokens": usage.prompt_tokens if usage else 0,
                "completion_tokens": usage.completion_tokens if usage else 0,
                "reasoning_tokens": usage.reasoning_tokens if usage else 0,
            },
            "turns": len(result.turns) if result is not None else 0,
            # What the lenient harmony parser repaired: a well-trained model needs none.
            "recoveries": [r for t in result.turns for r in t.recoveries] if result else [],
            "tool_calls": [
                {
                    "recipient": c.recipient,
                    "arguments": c.arguments,
                    "output": c.output,
                    "is_error": c.is_error,
                }
                for c in (result.tool_calls if result is not None else [])
            ],
            "final_output": result.final_output if result is not None else "",
            "transcript": _transcript(result.conversation.messages) if result else [],
        }


def _is_remote(engine: Engine | None) -> bool:
    from runtime.remote import RemoteEngine

    return isinstance(engine, RemoteEngine)
