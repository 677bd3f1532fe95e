"""The search backend interface, and the shared HTTP plumbing of the web search APIs.

A backend answers `search(query, topn)`; one that holds the documents itself (the local
index) also answers `fetch(url)`, so opened pages come from it rather than the web.
Configuration (API keys, base URLs) is read when the backend is built, so a missing key stops
the program at start-up instead of failing on the model's first search.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from bs4 import BeautifulSoup

from agent.http_retry import RetryPolicy
from tools.base import ToolError
from tools.browser.page import Page


@dataclass(frozen=True)
class SearchResult:
    """One hit: where it is, what it is called, and a short extract."""

    url: str
    title: str
    snippet: str = ""


def plain_snippet(text: object) -> str:
    """A snippet as one line of plain text: APIs mark matches up (Brave uses <strong>).
    Anything but a string (an API answering out of its documented shape) is no text."""
    if not text or not isinstance(text, str):
        return ""
    if "<" in text or "&" in text:
        text = BeautifulSoup(text, "lxml").get_text(" ")
    return " ".join(text.split())


def hits_to_results(
    hits: object, topn: int, snippet: Callable[[dict], str | None]
) -> list[SearchResult]:
    """A search API's hits (a list of objects) as results: at most `topn`, those without a
    URL skipped, the URL standing in for a missing title; anything else is no result."""
    return [
        SearchResult(
            url=hit["url"],
            title=plain_snippet(hit.get("title")) or hit["url"],
            snippet=plain_snippet(_snippet_of(hit, snippet)),
        )
        for hit in (hits if isinstance(hits, list) else [])
        if isinstance(hit, dict) and isinstance(hit.get("url"), str) and hit["url"]
    ][:topn]


def _snippet_of(hit: dict, snippet: Callable[[dict], str | None]) -> str | None:
    try:
        return snippet(hit)
    except (AttributeError, TypeError):  # fields of another type than documented
        return None


class SearchError(ToolError):
    """A search that failed; the text is shown to the model."""


class BackendConfigError(ValueError):
    """A backend that cannot be built (missing key or URL); raised at construction."""


class SearchBackend(ABC):
    """Where `browser.search` results (and, for some backends, pages) come from."""

    name: ClassVar[str]

    @abstractmethod
    async def search(self, query: str, topn: int) -> list[SearchResult]:
        """At most `topn` results for `query`, best first."""

    async def fetch(self, url: str) -> Page | None:
        """The page at `url` if this backend holds it, else None (fetch it from the web)."""
        return None

    async def aclose(self) -> None:
        """Release connections or files. Safe to call twice."""


class WebSearchBackend(SearchBackend):
    """A search API over HTTPS with a key from the environment and an overridable base URL.

    The API host is chosen by the operator, not the model, so it does not go through the
    browser's egress guard (a self-hosted SearXNG usually lives on a private address).
    """

    key_env: ClassVar[str | None]
    base_url_env: ClassVar[str]
    default_base_url: ClassVar[str | None]
    auth_hint: ClassVar[str] = ""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 20.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        self.api_key = api_key or (os.environ.get(self.key_env) if self.key_env else None)
        if self.key_env and not self.api_key:
            raise BackendConfigError(
                f"the {self.name} search backend needs an API key: set {self.key_env} "
                "or pass api_key=..."
            )
        base = base_url or os.environ.get(self.base_url_env) or self.default_base_url
        if not base:
            raise BackendConfigError(
                f"the {self.name} search backend needs a base URL: set {self.base_url_env} "
                "(e.g. http://localhost:8080) or pass base_url=..."
            )
        self.base_url = base.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.AsyncClient(timeout=timeout)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one API request, retrying 429/5xx with backoff; the decoded JSON body."""
        url = self.base_url + path
        policy = RetryPolicy(self.retries, self.backoff, self.backoff * 20)
        attempt = 0
        while True:
            try:
                response = await self._client.request(method, url, **kwargs)
            except httpx.TimeoutException as exc:
                raise SearchError(f"{self.name} search timed out; try again.") from exc
            except httpx.HTTPError as exc:
                raise SearchError(f"{self.name} search could not be reached ({exc}).") from exc
            delay = policy.delay(attempt, response.status_code, response.headers)
            if delay is None:
                break
            await asyncio.sleep(delay)
            attempt += 1
        if response.status_code in (401, 403):
            raise SearchError(
                f"{self.name} search refused the request (HTTP {response.status_code}); "
                f"the operator should check {self.key_env or self.base_url_env}. {self.auth_hint}"
            )
        if response.status_code >= 400:
            raise SearchError(
                f"{self.name} search failed with HTTP {response.status_code}; try again later "
                "or rephrase the query."
            )
        try:
            return response.json()
        except ValueError as exc:
            raise SearchError(f"{self.name} search returned a response that is not JSON.") from exc

    async def aclose(self) -> None:
        await self._client.aclose()
