"""Brave Search: GET /res/v1/web/search?q=&count= with the `X-Subscription-Token` header;
key from BRAVE_API_KEY. The API returns at most 20 results per request."""

from __future__ import annotations

from tools.browser.backends.base import SearchResult, WebSearchBackend, hits_to_results

MAX_COUNT = 20


class BraveBackend(WebSearchBackend):
    name = "brave"
    key_env = "BRAVE_API_KEY"
    base_url_env = "BRAVE_BASE_URL"
    default_base_url = "https://api.search.brave.com"

    async def search(self, query: str, topn: int) -> list[SearchResult]:
        data = await self._request(
            "GET",
            "/res/v1/web/search",
            headers={"X-Subscription-Token": self.api_key, "Accept": "application/json"},
            params={"q": query, "count": min(topn, MAX_COUNT)},
        )
        return hits_to_results(
            (data.get("web") or {}).get("results", []), topn, lambda hit: hit.get("description")
        )
