"""Turning the model's citations `【cursor†Lx-Ly】` into links a reader can follow.

The model cites by cursor and line numbers, which only mean something together with the
browsing state of its session; here they become Markdown links to the page (with a text
fragment that scrolls a browser to the cited line) and a numbered list of sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from tools.browser.page import strip_markers
from tools.browser.state import BrowserState

CITATION = re.compile(r"【(\d+)†L(\d+)(?:-L(\d+))?】")


@dataclass(frozen=True)
class Source:
    """A cited span: the page it is on, its lines (inclusive) and their text."""

    number: int
    url: str
    title: str
    start: int
    end: int
    quote: str

    @property
    def link(self) -> str:
        """The page URL, pointing at the cited line where the scheme allows it."""
        if not self.url.startswith(("http://", "https://")):
            return self.url
        words = " ".join(self.quote.split()[:8])
        return f"{self.url}#:~:text={quote(words, safe='')}" if words else self.url


def resolve_citations(answer: str, state: BrowserState) -> tuple[str, list[Source]]:
    """The answer with each citation replaced by a Markdown link `[n](url)`, and the sources.

    Citations of the same lines share a number. A citation of a cursor or lines that do
    not exist is removed, since it cannot be followed.
    """
    sources: dict[tuple[str, int, int], Source] = {}

    def replace(match: re.Match[str]) -> str:
        cursor, start = int(match.group(1)), int(match.group(2))
        end = int(match.group(3) or start)
        if cursor >= len(state.displays):
            return ""
        page = state.displays[cursor].page
        end = min(end, len(page.lines) - 1)
        if not 0 <= start <= end:
            return ""
        key = (page.url, start, end)
        if key not in sources:
            text = strip_markers(" ".join(page.lines[start : end + 1]))
            sources[key] = Source(len(sources) + 1, page.url, page.title, start, end, text)
        source = sources[key]
        before = answer[match.start() - 1] if match.start() else " "
        return f"{'' if before.isspace() else ' '}[{source.number}]({source.link})"

    return CITATION.sub(replace, answer), list(sources.values())


def format_answer(answer: str, state: BrowserState) -> str:
    """The answer with linked citations followed by a `Sources:` list."""
    text, sources = resolve_citations(answer, state)
    if not sources:
        return text
    lines = [
        f"{s.number}. [{s.title}]({s.url}), "
        + (f"line {s.start}" if s.start == s.end else f"lines {s.start}-{s.end}")
        for s in sources
    ]
    return text + "\n\nSources:\n" + "\n".join(lines)
