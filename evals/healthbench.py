"""Rubric grading (HealthBench): a grader model judges each rubric item against the reply.

The grader sees the conversation and the model's final answer, never its reasoning. Each
rubric item gets one grader call answering JSON {"explanation", "criteria_met"}. The score
is the points of the items met over the total positive points, clipped to [0, 1]. A grader
reply that is not that JSON (after one more try) makes the sample an error, not a score.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import TYPE_CHECKING, Any

from evals.grading import Grade

if TYPE_CHECKING:
    from evals.benchmarks import Sample
    from runtime.engine import Engine

GRADER_TEMPLATE = """You are grading one reply of an AI assistant against one rubric item.

<conversation>
{conversation}
</conversation>

<rubric_item>
[{points} points] {criterion}
</rubric_item>

Decide whether the assistant's last reply meets the rubric item. If the item describes
something undesirable (negative points), "criteria_met" is true when the reply does that
undesirable thing. Reply with one JSON object and nothing else:
{{"explanation": "<one or two sentences>", "criteria_met": true or false}}"""


class GraderError(RuntimeError):
    """The grader model's reply could not be read as a verdict."""


def rubric_score(rubric: list[dict[str, Any]], met: list[bool]) -> float:
    """Points of the items met over the total positive points, clipped to [0, 1]."""
    possible = sum(item["points"] for item in rubric if item["points"] > 0)
    if possible <= 0:
        raise ValueError("a rubric needs at least one item with positive points")
    achieved = sum(item["points"] for item, ok in zip(rubric, met, strict=True) if ok)
    return min(max(achieved / possible, 0.0), 1.0)


def parse_verdict(text: str) -> bool:
    """`criteria_met` from the grader's reply (the last JSON object in it)."""
    for candidate in reversed(re.findall(r"\{.*?\}", text, flags=re.DOTALL)):
        try:
            verdict = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(verdict, dict) and isinstance(verdict.get("criteria_met"), bool):
            return verdict["criteria_met"]
    raise GraderError(f"the grader did not answer with a JSON verdict: {text[:200]!r}")


class RubricGrader:
    """Grades with `engine` (any runtime engine) at a fixed effort."""

    def __init__(
        self, engine: Engine, *, effort: str = "low", max_tokens: int = 4096, attempts: int = 2
    ) -> None:
        self.engine = engine
        from runtime.remote import RemoteEngine

        # A local grader model holds one KV cache: one verdict at a time; servers take many.
        remote = isinstance(engine, RemoteEngine)
        self._gate = contextlib.nullcontext() if remote else asyncio.Lock()
        self.effort = effort
        self.max_tokens = max_tokens
        self.attempts = attempts

    async def grade(self, sample: Sample, answer: str) -> Grade:
        turns = [*sample.history, ("user", sample.task), ("assistant", answer)]
        conversation = "\n\n".join(f"{role}: {text}" for role, text in turns)
        met: list[bool] = []
        for item in sample.rubric:
            prompt = GRADER_TEMPLATE.format(
                conversation=conversation, points=item["points"], criterion=item["criterion"]
            )
            async with self._gate:
                met.append(await self._verdict(prompt))
        score = rubric_score(list(sample.rubric), met)
        detail = f"{sum(met)}/{len(met)} rubric items met"
        return Grade("correct" if score >= 1.0 else "wrong", score, f"{score:.3f}", detail)

    async def _verdict(self, prompt: str) -> bool:
        from agent.loop import Agent

        problem: Exception | None = None
        for _ in range(self.attempts):
            agent = Agent(
                self.engine, reasoning_effort=self.effort, max_tokens_per_turn=self.max_tokens
            )
            result = await agent.arun(prompt)
            if result.stop_reason == "error":
                raise GraderError(f"the grader model failed: {result.error}")
            try:
                return parse_verdict(result.final_output)
            except GraderError as exc:
                problem = exc
        assert problem is not None
        raise problem
