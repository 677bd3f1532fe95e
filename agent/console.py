"""Terminal display of a run's events: reasoning dimmed, tool calls and results marked,
the answer plain. Model and tool text is printed as text: no rich markup is interpreted and,
through `safe_text`, no terminal control sequence reaches the terminal."""

from __future__ import annotations

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
    ToolResult,
)
from agent.safe_text import safe_text

RESULT_PREVIEW_CHARS = 2000


class EventPrinter:
    """Prints events as they arrive; starts a new line whenever the kind of text changes."""

    def __init__(self, console: Console, show_reasoning: bool = True) -> None:
        self.console = console
        self.show_reasoning = show_reasoning
        self._section: str | None = None

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
        elif isinstance(event, Done):
            self._begin(None)
            result = event.result
            usage = result.usage
            summary = (
                f"[{result.stop_reason}] {len(result.turns)} turns, "
                f"{len(result.tool_calls)} tool calls, {usage.prompt_tokens} prompt + "
                f"{usage.completion_tokens} completion tokens "
                f"({usage.reasoning_tokens} reasoning), {result.seconds:.1f} s"
            )
            style = "dim" if result.stop_reason == "final" else "bold yellow"
            self._print(summary, style=style)

    def _begin(self, section: str | None) -> None:
        if self._section is not None and self._section != section:
            self.console.print()
        self._section = section

    def _text(self, section: str, text: str, style: str | None) -> None:
        self._begin(section)
        self._print(text, style=style, end="")

    def _print(self, text: str, style: str | None, end: str = "\n") -> None:
        """The one way text reaches the terminal: as plain text, control sequences defused."""
        self.console.print(safe_text(text), style=style, end=end, markup=False, highlight=False)
