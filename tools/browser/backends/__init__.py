"""Search backends: one interface, a local offline index and five web search APIs."""

from __future__ import annotations

from typing import Any

from tools.browser.backends.base import (
    BackendConfigError,
    SearchBackend,
    SearchError,
    SearchResult,
    WebSearchBackend,
)
from tools.browser.backends.brave import BraveBackend
from tools.browser.backends.exa import ExaBackend
from tools.browser.backends.local import LocalIndex
from tools.browser.backends.searxng import SearxngBackend
from tools.browser.backends.tavily import TavilyBackend
from tools.browser.backends.you import YouBackend

WEB_BACKENDS: dict[str, type[WebSearchBackend]] = {
    cls.name: cls for cls in (ExaBackend, YouBackend, TavilyBackend, BraveBackend, SearxngBackend)
}


def create_backend(name: str, **options: Any) -> SearchBackend:
    """A backend by name: `local` (needs `source=` folder or file, optional `db_path=`) or one
    of the web APIs (`exa`, `you`, `tavily`, `brave`, `searxng`), configured from the
    environment unless `api_key=` / `base_url=` are given."""
    if name == LocalIndex.name:
        return LocalIndex.build(**options)
    if name not in WEB_BACKENDS:
        choices = ", ".join([LocalIndex.name, *WEB_BACKENDS])
        raise BackendConfigError(f"unknown search backend {name!r}; choose one of {choices}.")
    return WEB_BACKENDS[name](**options)


__all__ = [
    "WEB_BACKENDS",
    "BackendConfigError",
    "BraveBackend",
    "ExaBackend",
    "LocalIndex",
    "SearchBackend",
    "SearchError",
    "SearchResult",
    "SearxngBackend",
    "TavilyBackend",
    "WebSearchBackend",
    "YouBackend",
    "create_backend",
]
