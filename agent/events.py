"""What `Agent.stream` yields while a run unfolds, in the order things happen.

A run yields text deltas as tokens arrive, `ToolCallStarted` / `ToolCallArgumentsDelta` /
`ToolCallFinished` while the model writes a call (`ToolCallTruncated` instead of
`ToolCallFinished` when a limit cut it off), `ToolResult` once the tool answered,
`TurnEnd` after each model turn, and always ends with `Done` (preceded by `Error` when the
engine failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.result import RunResult, ToolCall, TurnStats


@dataclass(frozen=True)
class ReasoningDelta:
    """Chain-of-thought text (analysis channel); not meant for end users."""

    text: str


@dataclass(frozen=True)
class CommentaryDelta:
    """User-visible text on the commentary channel, e.g. a preamble before tool calls."""

    text: str


@dataclass(frozen=True)
class AnswerDelta:
    """Text of the final answer."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    call_id: str
    recipient: str


@dataclass(frozen=True)
class ToolCallArgumentsDelta:
    call_id: str
    text: str


@dataclass(frozen=True)
class ToolCallFinished:
    """The model finished writing the call; the tool runs next."""

    call_id: str
    recipient: str
    arguments: str


@dataclass(frozen=True)
class ToolCallTruncated:
    """The token limit (or the clock) cut the call off before it ended: it is not run and
    not kept in the conversation; `arguments` is what had been written."""

    call_id: str
    recipient: str
    arguments: str


@dataclass(frozen=True)
class ToolResult:
    call: ToolCall


@dataclass(frozen=True)
class TurnEnd:
    stats: TurnStats


@dataclass(frozen=True)
class Error:
    message: str


@dataclass(frozen=True)
class Done:
    result: RunResult


Event = (
    ReasoningDelta
    | CommentaryDelta
    | AnswerDelta
    | ToolCallStarted
    | ToolCallArgumentsDelta
    | ToolCallFinished
    | ToolCallTruncated
    | ToolResult
    | TurnEnd
    | Error
    | Done
)
