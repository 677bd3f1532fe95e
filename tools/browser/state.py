"""Browsing state of one session: every display, by cursor, and the pages already rendered.

Each display (search results, opened page, scroll, find) is its own entry, so two searches
never overwrite each other and a link id stays valid on the cursor that showed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tools.base import ToolError
from tools.browser.page import Link, Page


@dataclass(frozen=True)
class Display:
    """What the model was shown under one cursor: a page and the line range [start, end)."""

    page: Page
    start: int
    end: int


@dataclass
class BrowserState:
    """The displays of a session (index = cursor) and rendered pages by URL."""

    displays: list[Display] = field(default_factory=list)
    pages: dict[str, Page] = field(default_factory=dict)

    def add(self, page: Page, start: int, end: int) -> int:
        """Record a display and return its cursor."""
        self.displays.append(Display(page, start, end))
        self.pages.setdefault(page.url, page)
        return len(self.displays) - 1

    def get(self, cursor: int = -1) -> Display:
        """The display under `cursor`; -1 (or any negative) means the latest."""
        if not self.displays:
            raise ToolError("no page is open yet; call browser.search or browser.open first.")
        if cursor < 0:
            return self.displays[-1]
        if cursor >= len(self.displays):
            raise ToolError(
                f"cursor {cursor} does not exist; valid cursors are 0 to {len(self.displays) - 1}."
            )
        return self.displays[cursor]

    def link(self, cursor: int, link_id: int) -> Link:
        """Link `link_id` of the page under `cursor`."""
        display = self.get(cursor)
        link = display.page.links.get(link_id)
        if link is None:
            shown = f"cursor {cursor}" if cursor >= 0 else "the current page"
            valid = f"0 to {len(display.page.links) - 1}" if display.page.links else "none"
            raise ToolError(
                f"{shown} has no link with id {link_id} (valid ids: {valid}); link ids are "
                "the numbers in 【id†text】."
            )
        return link


def find_page(page: Page, pattern: str, context: int = 2, max_matches: int = 50) -> Page:
    """Case-insensitive matches of `pattern` in `page`, each with `context` lines around it,
    as a new page whose link `k` opens match `k` at its line in the original page."""
    if not pattern.strip():
        raise ToolError("find needs a non-empty `pattern`.")
    needle = re.compile(r"\s+".join(map(re.escape, pattern.split())), re.IGNORECASE)
    lines: list[str] = []
    links: dict[int, Link] = {}
    for index, line in enumerate(page.lines):
        if len(links) == max_matches:
            break
        if not needle.search(line):
            continue
        match_id = len(links)
        links[match_id] = Link(url=page.url, text=f"match at L{index}", loc=index)
        lines.append(f"# 【{match_id}†match at L{index}】")
        first, last = max(0, index - context), min(len(page.lines), index + context + 1)
        lines.extend(page.lines[first:last])
        lines.append("")
    if not links:
        lines = [f"No matches for `{pattern}` in {page.title}."]
    title = f"Find results for text: `{pattern}` in `{page.title}`"
    return Page(url=page.url, title=title, lines=lines[:-1] if links else lines, links=links)
