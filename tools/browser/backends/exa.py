"""Exa (exa.ai): POST /search with the `x-api-key` header; key from EXA_API_KEY."""

from __future__ import annotations

from tools.browser.backends.base import SearchResult, WebSearchBackend, hits_to_results


class ExaBackend(WebSearchBackend):
    name = "exa"
    key_env = "EXA_API_KEY"
    base_url_env = "EXA_BASE_URL"
    default_base_url = "https://api.exa.ai"

    async def search(self, query: str, topn: int) -> list[SearchResult]:
        data = await self._request(
            "POST",
            "/search",
            headers={"x-api-key": self.api_key},
            json={"query": query, "numResults": topn, "contents": {"highlights": True}},
        )
        return hits_to_results(
            data.get("results", []),
            topn,
            lambda hit: " ".join(hit.get("highlights") or []) or hit.get("text"),
        )
