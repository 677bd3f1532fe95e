"""Search backends: each web API against a loopback server speaking its documented format,
and the offline SQLite FTS5 index built from files on disk."""

from __future__ import annotations

import asyncio
import json

import pytest

from tools.browser.backends import (
    BackendConfigError,
    BraveBackend,
    ExaBackend,
    LocalIndex,
    SearchError,
    SearchResult,
    SearxngBackend,
    TavilyBackend,
    YouBackend,
    create_backend,
)


def search(backend, query, topn):
    async def go():
        try:
            return await backend.search(query, topn)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def ok(data):
    return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()


def test_exa(serve):
    server = serve(
        lambda r: ok(
            {
                "requestId": "r1",
                "results": [
                    {"url": "https://a.example", "title": "A", "highlights": ["first <b>hit</b>"]},
                    {"url": "https://b.example", "title": "B", "text": "body text"},
                ],
            }
        )
    )
    results = search(ExaBackend(api_key="exa-key", base_url=server.url), "gpt oss", 2)
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/search")
    assert request.headers["x-api-key"] == "exa-key"
    assert request.json() == {"query": "gpt oss", "numResults": 2, "contents": {"highlights": True}}
    assert results == [
        SearchResult("https://a.example", "A", "first hit"),
        SearchResult("https://b.example", "B", "body text"),
    ]


def test_you(serve):
    web = [
        {"url": "https://w.example", "title": "W", "description": "desc", "snippets": ["s1"]},
        {"url": "https://x.example", "title": "X", "snippets": ["only snippet"]},
    ]
    news = [{"url": "https://n.example", "title": "N", "description": "news"}]
    server = serve(lambda r: ok({"results": {"web": web, "news": news}, "metadata": {}}))
    results = search(YouBackend(api_key="ydc-key", base_url=server.url), "birth rate", 2)
    request = server.requests[0]
    assert (request.method, request.path) == ("GET", "/v1/search")
    assert request.headers["x-api-key"] == "ydc-key"
    assert request.query == {"query": ["birth rate"], "count": ["2"]}
    assert results == [
        SearchResult("https://w.example", "W", "desc"),
        SearchResult("https://x.example", "X", "only snippet"),
    ]


def test_tavily(serve):
    hits = [{"url": "https://t.example", "title": "T", "content": "tavily content", "score": 0.9}]
    server = serve(lambda r: ok({"query": "q", "results": hits}))
    results = search(TavilyBackend(api_key="tvly-key", base_url=server.url), "q", 5)
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/search")
    assert request.headers["authorization"] == "Bearer tvly-key"
    assert request.json() == {"query": "q", "max_results": 5}
    assert results == [SearchResult("https://t.example", "T", "tavily content")]


def test_brave(serve):
    hits = [
        {
            "url": "https://br.example",
            "title": "Brave &amp; co",
            "description": "a <strong>b</strong>",
        }
    ]
    server = serve(lambda r: ok({"type": "search", "web": {"results": hits}}))
    results = search(BraveBackend(api_key="brave-key", base_url=server.url), "rust", 50)
    request = server.requests[0]
    assert (request.method, request.path) == ("GET", "/res/v1/web/search")
    assert request.headers["x-subscription-token"] == "brave-key"
    assert request.headers["accept"] == "application/json"
    assert request.query == {"q": ["rust"], "count": ["20"]}  # the API's maximum
    assert results == [SearchResult("https://br.example", "Brave & co", "a b")]


def test_searxng_and_topn(serve):
    hits = [{"url": f"https://s{i}.example", "title": f"S{i}", "content": "c"} for i in range(5)]
    server = serve(lambda r: ok({"query": "q", "number_of_results": 5, "results": hits}))
    results = search(SearxngBackend(base_url=server.url + "/"), "q", 3)
    request = server.requests[0]
    assert (request.method, request.path) == ("GET", "/search")
    assert request.query == {"q": ["q"], "format": ["json"]}
    assert [r.url for r in results] == [
        "https://s0.example",
        "https://s1.example",
        "https://s2.example",
    ]


def test_backends_read_keys_and_urls_from_the_environment(serve, monkeypatch):
    server = serve(lambda r: ok({"results": []}))
    monkeypatch.setenv("TAVILY_API_KEY", "env-key")
    monkeypatch.setenv("TAVILY_BASE_URL", server.url)
    assert search(create_backend("tavily"), "q", 1) == []
    assert server.requests[0].headers["authorization"] == "Bearer env-key"


@pytest.mark.parametrize(
    ("cls", "variable"),
    [
        (ExaBackend, "EXA_API_KEY"),
        (YouBackend, "YDC_API_KEY"),
        (TavilyBackend, "TAVILY_API_KEY"),
        (BraveBackend, "BRAVE_API_KEY"),
        (SearxngBackend, "SEARXNG_URL"),
    ],
)
def test_missing_configuration_fails_at_construction(cls, variable, monkeypatch):
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(BackendConfigError, match=variable):
        cls()


def test_unknown_backend_names_the_choices():
    with pytest.raises(BackendConfigError, match="local, exa, you, tavily, brave, searxng"):
        create_backend("google")


def test_api_errors_are_tool_errors_with_a_hint(serve):
    calls = []

    def app(request):
        calls.append(request)
        return (401, {}, b"no") if request.path == "/search" else (503, {}, b"busy")

    server = serve(app)
    with pytest.raises(SearchError, match=r"refused the request.*EXA_API_KEY"):
        search(ExaBackend(api_key="bad", base_url=server.url), "q", 1)
    with pytest.raises(SearchError, match="HTTP 503"):
        search(YouBackend(api_key="k", base_url=server.url, backoff=0.01), "q", 1)
    assert len(calls) == 1 + 3  # 401 is not retried; 503 is, twice


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "guide.html").write_text(
        "<html><head><title>Harmony guide</title></head><body><h1>Channels</h1>"
        "<p>The analysis channel holds reasoning. See <a href='sub/tools.md'>tools</a>.</p>"
        "</body></html>"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tools.md").write_text("# Tools\n\nThe browser tool searches the web.\n")
    (tmp_path / "notes.txt").write_text("Plain notes about sandboxing python code.\n")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    pages = [
        {
            "url": "https://wiki.example/moe",
            "title": "Mixture of experts",
            "text": "Experts route.",
        },
        {"url": "https://wiki.example/rope", "html": "<title>RoPE</title><p>Rotary embeddings</p>"},
    ]
    (tmp_path / "pages.jsonl").write_text("\n".join(json.dumps(p) for p in pages) + "\n")
    return tmp_path


def test_local_index_searches_files_and_jsonl(corpus):
    index = LocalIndex.build(corpus)
    assert len(index) == 5
    results = search(index, "analysis channel", 5)
    assert results[0].title == "Harmony guide"
    assert results[0].url == (corpus / "guide.html").resolve().as_uri()
    assert "analysis channel" in results[0].snippet
    assert [r.title for r in search(LocalIndex.build(corpus), "rotary", 5)] == ["RoPE"]
    assert [r.title for r in search(LocalIndex.build(corpus), "sandboxing", 5)] == ["notes.txt"]


def test_local_index_ranks_with_bm25_and_honours_topn(corpus):
    index = LocalIndex.build(corpus)
    titles = [r.title for r in search(index, "tools", 5)]
    assert titles == ["Tools", "Harmony guide"]  # a title match outranks a body match
    assert [r.title for r in search(LocalIndex.build(corpus), "tools", 1)] == ["Tools"]


def test_local_index_serves_pages_and_persists(corpus, tmp_path):
    db = tmp_path / "index.sqlite"
    LocalIndex.build(corpus, db_path=db)
    index = LocalIndex(db)  # reopened from disk
    page = asyncio.run(index.fetch("https://wiki.example/moe"))
    assert page.title == "Mixture of experts" and page.lines == ["Experts route."]
    guide = asyncio.run(index.fetch((corpus / "guide.html").resolve().as_uri()))
    assert guide.links[0].url == (corpus / "sub" / "tools.md").resolve().as_uri()
    assert asyncio.run(index.fetch(guide.links[0].url)).title == "Tools"
    assert asyncio.run(index.fetch("https://elsewhere.example/")) is None


def test_local_index_refuses_a_query_without_words(corpus):
    with pytest.raises(Exception, match="no words"):
        search(LocalIndex.build(corpus), "?! --", 3)
