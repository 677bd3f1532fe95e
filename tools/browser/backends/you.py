"""You.com: GET /v1/search?query=&count= with the `X-API-Key` header; key from YDC_API_KEY."""

from __future__ import annotations

from tools.browser.backends.base import SearchResult, WebSearchBackend, hits_to_results


class YouBackend(WebSearchBackend):
    name = "you"
    key_env = "YDC_API_KEY"
    base_url_env = "YDC_BASE_URL"
    default_base_url = "https://ydc-index.io"

    async def search(self, query: str, topn: int) -> list[SearchResult]:
        data = await self._request(
            "GET",
            "/v1/search",
            headers={"X-API-Key": self.api_key},
            params={"query": query, "count": topn},
        )
        sections = data.get("results") or {}
        hits = [*sections.get("web", []), *sections.get("news", [])]
        return hits_to_results(
            hits, topn, lambda hit: hit.get("description") or " ".join(hit.get("snippets", []))
        )
