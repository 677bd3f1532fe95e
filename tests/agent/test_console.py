"""The CLI's event printer shows model and tool text without letting it drive the terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from agent.console import EventPrinter
from agent.events import (
    AnswerDelta,
    CommentaryDelta,
    Error,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    ToolResult,
)
from agent.result import ToolCall
from agent.safe_text import safe_text

# Clipboard write (OSC 52), screen clear, window title, bell, an 8-bit CSI, a bidi override,
# a cursor-up that would overwrite the line above, and a carriage return that would too.
HOSTILE = (
    "a\x1b]52;c;ZWNobyBwd25lZA==\x1b\\b\x1b[2Jc\x1b]0;title\x07d\x07e\x9b1Af\u202eg\x1b[1Ah"
    "\rover\x08\x7f\x00"
)
CONTROLS = [chr(c) for c in range(32) if chr(c) not in "\n"] + ["\x7f", "\x9b", "\u202e"]


def test_escape_sequences_are_removed_and_other_controls_shown():
    assert safe_text(HOSTILE) == "abcd\u2407ef\ufffdgh\nover\u2408\u2421\u2400"
    assert safe_text("plain text\n\tindented") == "plain text\n\tindented"
    assert safe_text("unterminated \x1b]52;c;QUFB") == "unterminated \u241b]52;c;QUFB"
    assert safe_text("colour \x1b[31mred\x1b[0m, progress 10%\r20%\r\n") == (
        "colour red, progress 10%\n20%\n"
    )


@pytest.mark.parametrize(
    "event",
    [
        ReasoningDelta(HOSTILE),
        CommentaryDelta(HOSTILE),
        AnswerDelta(HOSTILE),
        ToolCallStarted("c1", "python" + HOSTILE),
        ToolCallArgumentsDelta("c1", HOSTILE),
        ToolResult(
            ToolCall(call_id="c1", turn=0, recipient="python", arguments="", output=HOSTILE)
        ),
        Error(HOSTILE),
    ],
    ids=lambda e: type(e).__name__,
)
def test_no_event_sends_control_sequences_to_the_terminal(event):
    out = io.StringIO()
    # A real terminal console: rich emits its own styling, nothing else may get through.
    console = Console(file=out, force_terminal=True, color_system=None, width=200)
    EventPrinter(console)(event)
    shown = out.getvalue()
    assert "\x1b" not in shown
    assert not any(c in shown for c in CONTROLS if c != "\t"), repr(shown)
    assert "ZWNobyBwd25lZA" not in shown  # the clipboard payload is gone, not just defused
    assert "over" in shown


def test_rich_markup_in_model_text_is_printed_as_typed():
    out = io.StringIO()
    EventPrinter(Console(file=out, width=200))(ToolCallStarted("c1", "[bold]python"))
    assert "[bold]python" in out.getvalue()
