"""A self-hosted SearXNG: GET /search?q=&format=json at the base URL in SEARXNG_URL.

The JSON format must be enabled in the instance's settings (search.formats); SearXNG has no
result-count parameter, so results are cut to `topn` here.
"""

from __future__ import annotations

from tools.browser.backends.base import SearchResult, WebSearchBackend, hits_to_results


class SearxngBackend(WebSearchBackend):
    name = "searxng"
    key_env = None
    base_url_env = "SEARXNG_URL"
    default_base_url = None
    auth_hint = "SearXNG answers 403 when the json format is not enabled in settings.yml."

    async def search(self, query: str, topn: int) -> list[SearchResult]:
        data = await self._request("GET", "/search", params={"q": query, "format": "json"})
        return hits_to_results(data.get("results", []), topn, lambda hit: hit.get("content"))
