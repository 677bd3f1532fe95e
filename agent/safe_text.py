"""Text from a model, a tool or a web page, made safe to show: no control sequence acts.

`safe_text` is the one place this is decided, for the terminal (the CLI's event printer) and
for the model (python tool output, browser pages) alike:

- Escape sequences are removed whole: CSI (colours, cursor moves, screen clears), OSC
  (window titles, OSC 52 clipboard writes, hyperlinks), DCS/SOS/PM/APC strings, other `ESC x`
  sequences, and their 8-bit C1 forms. Colour codes carry no content, so the model loses
  nothing, and a terminal cannot be driven by text it merely displays.
- Every other control character becomes a visible stand-in of one character: C0 controls
  and DEL their Unicode control pictures (`␛`, `␇`, `␈`), C1 controls and the bidirectional
  overrides and isolates (which reorder what is shown, as in "Trojan Source") `�`. An
  unterminated or split sequence therefore shows as `␛...` instead of acting.
- Line breaks and tabs stay; a carriage return not followed by a newline becomes a newline,
  so text cannot overwrite what was printed before it on the same line.

No output is longer than its input, so limits counted on the input still hold.
"""

from __future__ import annotations

import re

_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]                      # CSI ... final byte
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) [^\x07\x1b\x9c]*
      (?:\x07|\x1b\\|\x9c)                                     # OSC/DCS/SOS/PM/APC ... BEL or ST
    | \x1b [ -/]* [0-OQ-WYZ\\`-~]                   # other ESC sequences (RIS, charsets, ...)
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LONE_CR = re.compile(r"\r(?!\n)")


def _stand_in(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def safe_text(text: str) -> str:
    """`text` with escape sequences removed and other control characters made visible."""
    if text.isprintable():  # the common case: nothing to do
        return text
    text = _LONE_CR.sub("\n", text.replace("\r\n", "\n"))
    return _CONTROL.sub(_stand_in, _SEQUENCE.sub("", text))
