"""The model's `browser` tool: search, open and find, with citations back to the pages.

from tools.browser import BrowserTool, create_backend
browser = BrowserTool(create_backend("exa"))          # EXA_API_KEY from the environment
offline = BrowserTool(LocalIndex.build("docs/"), web=False)
"""

from tools.browser.backends import (
    BackendConfigError,
    SearchBackend,
    SearchResult,
    create_backend,
)
from tools.browser.backends.local import LocalIndex
from tools.browser.citations import Source, format_answer, resolve_citations
from tools.browser.fetch import Fetcher, FetchError, FetchLimits, HttpxHop
from tools.browser.guard import EgressDenied, EgressGuard, forbidden_reason
from tools.browser.page import Page, RawResponse
from tools.browser.sandbox import DockerHop
from tools.browser.state import BrowserState
from tools.browser.tool import BrowserTool

__all__ = [
    "BackendConfigError",
    "BrowserState",
    "BrowserTool",
    "DockerHop",
    "EgressDenied",
    "EgressGuard",
    "FetchError",
    "FetchLimits",
    "Fetcher",
    "HttpxHop",
    "LocalIndex",
    "Page",
    "RawResponse",
    "SearchBackend",
    "SearchResult",
    "Source",
    "create_backend",
    "forbidden_reason",
    "format_answer",
    "resolve_citations",
]
