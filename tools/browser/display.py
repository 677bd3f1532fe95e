"""The browsing display the model reads: a header with the cursor, then numbered lines.

    [3] Page title (https://example.com/page)
    **viewing lines [0 - 41] of 120**

    L0: ...

The viewport holds about `token_budget` o200k tokens so a page view costs the model a
predictable share of its context, whatever the line lengths.
"""

from __future__ import annotations

from agent.harmony.tokenizer import load_o200k_harmony
from tools.base import ToolError
from tools.browser.page import Page

DEFAULT_TOKEN_BUDGET = 1024


def _numbered(index: int, line: str) -> str:
    return f"L{index}: {line}"


def viewport(page: Page, loc: int, num_lines: int, token_budget: int) -> tuple[int, int]:
    """The [start, end) line range to show from `loc`: `num_lines` lines when positive,
    otherwise as many as fit in `token_budget` tokens (at least one)."""
    total = len(page.lines)
    if total == 0:
        return 0, 0
    if not 0 <= loc < total:
        raise ToolError(
            f"loc {loc} is outside {page.url} ({total} lines); use a loc from 0 to {total - 1}."
        )
    if num_lines > 0:
        return loc, min(total, loc + num_lines)
    encoding = load_o200k_harmony()
    used, end = 0, loc
    while end < total:
        cost = len(encoding.encode_ordinary(_numbered(end, page.lines[end]) + "\n"))
        if end > loc and used + cost > token_budget:
            break
        used += cost
        end += 1
    return loc, end


def render_display(page: Page, cursor: int, start: int, end: int) -> str:
    """The text of one display of `page` showing lines [start, end)."""
    header = f"[{cursor}] {page.title}" + (f" ({page.url})" if page.url else "")
    if not page.lines:
        return f"{header}\n**viewing lines [0 - 0] of 0**\n\n(the page has no text)"
    body = "\n".join(_numbered(i, page.lines[i]) for i in range(start, end))
    return f"{header}\n**viewing lines [{start} - {end - 1}] of {len(page.lines)}**\n\n{body}"
