"""What a run produced: the answer, the conversation, every tool call, usage and timings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from agent.harmony import Conversation

# Why a run ended: a final answer, calls for the caller to run, or the limit / failure
# that cut it short.
StopReason = Literal[
    "final", "tool_calls", "max_turns", "max_tokens", "context_full", "timeout", "error"
]


def _add_optional(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


class Usage(BaseModel):
    """Token counts. `prefilled_tokens` / `reused_tokens` split `prompt_tokens` into what
    the engine computed and what it took from its cache; None when it does not say."""

    prompt_tokens: int = 0
    prefilled_tokens: int | None = None
    reused_tokens: int | None = None
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            prefilled_tokens=_add_optional(self.prefilled_tokens, other.prefilled_tokens),
            reused_tokens=_add_optional(self.reused_tokens, other.reused_tokens),
            completion_tokens=self.completion_tokens + other.completion_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


class TruncatedCall(BaseModel):
    """A tool call a limit cut off before it ended: never run, not kept in the conversation."""

    call_id: str
    recipient: str
    arguments: str


class TurnStats(BaseModel):
    """One model turn: a generate call and the tool call it ended with. `recoveries` lists
    what the lenient parser repaired and what the turn discarded."""

    turn: int
    usage: Usage
    first_token_seconds: float | None = None
    generate_seconds: float = 0.0
    tool_seconds: float = 0.0
    recoveries: list[str] = Field(default_factory=list)
    truncated_call: TruncatedCall | None = None


class ToolCall(BaseModel):
    """A tool call as the model wrote it, and what went back to the model."""

    call_id: str
    turn: int
    recipient: str
    arguments: str
    output: str
    is_error: bool = False
    seconds: float = 0.0


class RunResult(BaseModel):
    """One `run`: its answer and costs; `conversation` is the whole session so far."""

    final_output: str
    stop_reason: StopReason
    conversation: Conversation = Field(exclude=True)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    turns: list[TurnStats] = Field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def truncated_call(self) -> TruncatedCall | None:
        """The call the run's last turn was writing when a limit cut it off, if any."""
        return self.turns[-1].truncated_call if self.turns else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def usage(self) -> Usage:
        return sum((t.usage for t in self.turns), Usage())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the conversation in openai-harmony's JSON form."""
        return {**self.model_dump(mode="json"), "conversation": self.conversation.to_dict()}
