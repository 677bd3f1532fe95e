"""Tavily: POST /search with `Authorization: Bearer <key>`; key from TAVILY_API_KEY."""

from __future__ import annotations

from tools.browser.backends.base import SearchResult, WebSearchBackend, hits_to_results


class TavilyBackend(WebSearchBackend):
    name = "tavily"
    key_env = "TAVILY_API_KEY"
    base_url_env = "TAVILY_BASE_URL"
    default_base_url = "https://api.tavily.com"

    async def search(self, query: str, topn: int) -> list[SearchResult]:
        data = await self._request(
            "POST",
            "/search",
            headers={"Authorization": f"Bearer {self.api_key}"},
            json={"query": query, "max_results": topn},
        )
        return hits_to_results(data.get("results", []), topn, lambda hit: hit.get("content"))
