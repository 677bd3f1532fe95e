"""Terminal display of a run's events: reasoning dimmed, tool calls and results marked,
the answer plain. Model and tool text is printed as text: no rich markup is interpreted and,
through `safe_text`, no terminal control sequence reaches the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from agent.events import (
    AnswerDelta,
    CommentaryDelta,
    Done,
    Error,
    Event,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    ToolCallTruncated,
    ToolResult,
    TurnEnd,
)
from agent.harmony import Role
from agent.safe_text import safe_text

if TYPE_CHECKING:
    from agent.result import RunResult

RESULT_PREVIEW_CHARS = 2000
# Why a run ended, in words; the flag in brackets is what raises the limit.
STOP_REASONS = {
    "final": "answered",
    "max_turns": "stopped: the run used all {turns} model turns without an answer (--max-turns)",
    "max_tokens": (
        "stopped: the model wrote {tokens} tokens in one turn, the limit, without finishing "
        "(--max-tokens)"
    ),
    "context_full": "stopped: the conversation filled the model's context window",
    "timeout": "stopped: the time limit ran out (--max-seconds)",
    "error": "stopped by an error",
}


class EventPrinter:
    """Prints events as they arrive; starts a new line whenever the kind of text changes."""

    def __init__(self, console: Console, show_reasoning: bool = True) -> None:
        self.console = console
        self.show_reasoning = show_reasoning
        self._section: str | None = None
        # Whether the turn in progress / the last finished turn showed any text: a turn
        # that showed none is printed raw at the end (malformed output is still output).
        self._turn_shown = False
        self._last_turn_shown = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, ReasoningDelta):
            if self.show_reasoning:
                self._text("reasoning", event.text, "dim")
        elif isinstance(event, CommentaryDelta):
            self._text("commentary", event.text, "italic")
        elif isinstance(event, AnswerDelta):
            self._text("answer", event.text, None)
        elif isinstance(event, ToolCallStarted):
            self._begin("call")
            self._print(f"→ {event.recipient} ", style="bold cyan", end="")
        elif isinstance(event, ToolCallArgumentsDelta):
            self._text("call", event.text, "cyan")
        elif isinstance(event, ToolCallTruncated):
            self._begin("result")
            self._print(
                f"✂ {event.recipient}: cut off by the token limit, not run", style="bold yellow"
            )
            self._section = None
        elif isinstance(event, ToolResult):
            self._begin("result")
            output = event.call.output
            if len(output) > RESULT_PREVIEW_CHARS:
                output = output[:RESULT_PREVIEW_CHARS] + f" … ({len(event.call.output)} chars)"
            style = "red" if event.call.is_error else "green"
            self._print(f"← {event.call.recipient}", style=f"bold {style}")
            self._print(output, style=style)
            self._section = None
        elif isinstance(event, Error):
            self._begin("error")
            self._print(f"error: {event.message}", style="bold red")
            self._section = None
        elif isinstance(event, TurnEnd):
            self._last_turn_shown, self._turn_shown = self._turn_shown, False
        elif isinstance(event, Done):
            self._begin(None)
            result = event.result
            shown = self._last_turn_shown or self._turn_shown
            unshown = "" if shown else last_turn_text(result)
            if unshown.strip():
                self.console.print(
                    "the model's output did not follow the harmony format; as sampled:",
                    style="yellow",
                    soft_wrap=True,
                )
                self._print(unshown, style=None)
            style = "dim" if result.stop_reason == "final" else "bold yellow"
            self._print(summary(result), style=style)

    def _begin(self, section: str | None) -> None:
        if self._section is not None and self._section != section:
            self.console.print()
        self._section = section

    def _text(self, section: str, text: str, style: str | None) -> None:
        self._begin(section)
        self._turn_shown = True
        self._print(text, style=style, end="")

    def _print(self, text: str, style: str | None, end: str = "\n") -> None:
        """The one way text reaches the terminal: as plain text, control sequences defused."""
        self.console.print(
            safe_text(text), style=style, end=end, markup=False, highlight=False, soft_wrap=True
        )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def stop_reason_text(result: RunResult) -> str:
    """Why the run ended, in words."""
    last = result.turns[-1].usage.completion_tokens if result.turns else 0
    return STOP_REASONS[result.stop_reason].format(turns=len(result.turns), tokens=last)


def summary(result: RunResult) -> str:
    """One line: why the run ended and what it cost."""
    usage = result.usage
    return (
        f"{stop_reason_text(result)} ({plural(len(result.turns), 'turn')}, "
        f"{plural(len(result.tool_calls), 'tool call')}, {usage.prompt_tokens} prompt + "
        f"{usage.completion_tokens} completion tokens, {usage.reasoning_tokens} of them "
        f"reasoning, {result.seconds:.1f} s)"
    )


def last_turn_text(result: RunResult) -> str:
    """The text of the assistant messages the run's last turn produced."""
    tail: list[str] = []
    for message in reversed(result.conversation.messages):
        if message.author.role != Role.ASSISTANT:
            break
        tail.append(message.text)
    return "\n".join(reversed(tail))
