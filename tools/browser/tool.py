"""The `browser` tool: the harmony namespace the model sees, and the executor of its calls.

`browser.search`, `browser.open` and `browser.find` take JSON arguments; each answer is one
tool message authored by the function's name (`browser.open`), to the assistant, on the
call's channel. Every failure, bad arguments included, is answered as text the model can act
on; nothing is raised out of `call`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.harmony import Message, TextContent, ToolNamespaceConfig
from agent.harmony.builtin_tools import BROWSER_DESCRIPTION
from agent.safe_text import safe_text
from tools.base import Tool, ToolError, tool_message, validate_arguments
from tools.browser.backends.base import SearchBackend, WebSearchBackend
from tools.browser.display import DEFAULT_TOKEN_BUDGET, render_display, viewport
from tools.browser.fetch import Fetcher
from tools.browser.page import Page, decode_text, render, search_results_page, text_to_page
from tools.browser.state import BrowserState, find_page


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SearchArgs(_Args):
    query: str
    topn: int = Field(10, ge=1, le=50)
    source: str | None = None


class OpenArgs(_Args):
    id: int | str = -1
    cursor: int = -1
    loc: int = -1
    num_lines: int = -1
    view_source: bool = False
    source: str | None = None


class FindArgs(_Args):
    pattern: str
    cursor: int = -1


_EXAMPLES = {
    "search": '{"query": "gpt-oss release date", "topn": 5}',
    "open": '{"id": 3} or {"id": "https://example.com"} or {"cursor": 1, "loc": 40}',
    "find": '{"pattern": "release", "cursor": 2}',
}


def _parse(function: str, text: str, model: type[_Args]) -> Any:
    """Validated arguments, or a ToolError that shows the problem and a correct example."""
    return validate_arguments(
        text, model, f"browser.{function}", f"Example: {_EXAMPLES[function]}."
    )


class BrowserTool(Tool):
    """A stateful browser for one session: search through `backend`, open pages from it or
    (unless `web=False`) from the web through `fetcher`, find text in what was shown."""

    name = "browser"

    def __init__(
        self,
        backend: SearchBackend,
        *,
        fetcher: Fetcher | None = None,
        web: bool = True,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        find_context: int = 2,
    ) -> None:
        self.backend = backend
        self.fetcher = (fetcher or Fetcher()) if web else None
        self.token_budget = token_budget
        self.find_context = find_context
        self.state = BrowserState()
        self._functions: dict[str, tuple[type[_Args], Callable[[Any], Awaitable[str]]]] = {
            "search": (SearchArgs, self._search),
            "open": (OpenArgs, self._open),
            "find": (FindArgs, self._find),
        }

    def namespace(self) -> ToolNamespaceConfig:
        """The official browser namespace, its description stating where results come from."""
        official = ToolNamespaceConfig.browser()
        if self.fetcher is None:
            access = (
                "Only documents of a local collection can be opened; there is no internet access."
            )
        else:
            limits = self.fetcher.limits
            size = limits.max_bytes
            size_text = f"{size / 1e6:g} MB" if size >= 1_000_000 else f"{size / 1e3:g} kB"
            refused = "private and intranet addresses are refused"
            if self.fetcher.guard.allows_private:
                refused += ", except those the operator allowed"
            access = (
                f"Pages are fetched live (timeout {limits.timeout:g} s, at most {size_text}; "
                f"{refused}); HTML, text, JSON and PDF are shown as text."
            )
        # The official last line is `sources=web (default: web)`; only a web search backend
        # makes that true.
        head = BROWSER_DESCRIPTION.rpartition("\n")[0]
        source = "web" if isinstance(self.backend, WebSearchBackend) else self.backend.name
        description = (
            f"{head}\nSearch results come from {self.backend.name}. {access}\n"
            f"sources={source} (default: {source})"
        )
        return official.model_copy(update={"description": description})

    async def call(self, message: Message) -> list[Message]:
        recipient = message.recipient or ""
        function = recipient.removeprefix(f"{self.name}.")
        text = "".join(c.text for c in message.content if isinstance(c, TextContent))
        try:
            if function not in self._functions:
                raise ToolError(
                    f"there is no function {recipient!r}; use browser.search, browser.open "
                    "or browser.find."
                )
            model, handler = self._functions[function]
            result = await handler(_parse(function, text, model))
        except ToolError as exc:
            result = f"Error: {exc}"
        # Pages and error details come from the web: no control sequence reaches the model.
        return [tool_message(message, safe_text(result))]

    def _show(self, page: Page, loc: int, num_lines: int) -> str:
        start, end = viewport(page, loc, num_lines, self.token_budget)
        cursor = self.state.add(page, start, end)
        return render_display(page, cursor, start, end)

    async def _search(self, args: SearchArgs) -> str:
        try:
            results = (await self.backend.search(args.query, args.topn))[: args.topn]
        except (AttributeError, TypeError, KeyError) as exc:  # an answer of another shape
            raise ToolError(
                f"the {self.backend.name} search service answered in an unexpected format "
                f"({type(exc).__name__}: {exc}); try again later or rephrase the query."
            ) from exc
        return self._show(search_results_page(args.query, results, self.backend.name), 0, -1)

    async def _open(self, args: OpenArgs) -> str:
        link_id = args.id
        if isinstance(link_id, str) and link_id.strip().lstrip("-").isdigit():
            link_id = int(link_id)
        if isinstance(link_id, str):
            url = link_id.strip() if "://" in link_id else f"https://{link_id.strip()}"
            page = await self._load(url, args.view_source)
            return self._show(page, max(args.loc, 0), args.num_lines)
        if link_id >= 0:
            link = self.state.link(args.cursor, link_id)
            page = await self._load(link.url, args.view_source)
            loc = args.loc if args.loc >= 0 else (link.loc or 0)
            return self._show(page, loc, args.num_lines)
        display = self.state.get(args.cursor)
        if args.loc >= 0:
            return self._show(display.page, args.loc, args.num_lines)
        loc = display.end
        if display.page.lines and loc >= len(display.page.lines):
            raise ToolError(
                f"the end of {display.page.url} is already shown (it has "
                f"{len(display.page.lines)} lines); pass a smaller loc to scroll back."
            )
        return self._show(display.page, loc, args.num_lines)

    async def _find(self, args: FindArgs) -> str:
        page = self.state.get(args.cursor).page
        return self._show(find_page(page, args.pattern, self.find_context), 0, -1)

    async def _load(self, url: str, view_source: bool) -> Page:
        """The page at `url`: already rendered this session, from the backend, or the web."""
        if not view_source:
            known = self.state.pages.get(url) or await self.backend.fetch(url)
            if known is not None:
                self.state.pages[url] = known
                return known
        if self.fetcher is None:
            raise ToolError(
                f"{url} is not in the {self.backend.name} collection and this browser has no "
                "web access; open a link from the search results instead."
            )
        raw = await self.fetcher.fetch(url)
        if view_source:
            return text_to_page(decode_text(raw, html_page=True), f"view-source:{raw.url}")
        page = render(raw)
        self.state.pages[url] = page
        return page

    async def aclose(self) -> None:
        """Close the fetcher's connections and the backend."""
        if self.fetcher is not None:
            await self.fetcher.aclose()
        await self.backend.aclose()
