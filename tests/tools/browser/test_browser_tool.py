"""The browser tool end to end: harmony messages in and out, cursors, scrolling, find,
topn, citations; pages from a loopback site and from a local index."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from agent.harmony import Message, Role, ToolNamespaceConfig
from agent.harmony.tokenizer import load_o200k_harmony
from tools.browser import BrowserTool, LocalIndex, format_answer, resolve_citations


def call(tool, function, args, channel="analysis"):
    body = args if isinstance(args, str) else json.dumps(args)
    message = (
        Message.from_role_and_content(Role.ASSISTANT, body)
        .with_channel(channel)
        .with_recipient(f"browser.{function}")
    )
    replies = asyncio.run(tool.call(message))
    assert len(replies) == 1
    return replies[0]


def text(reply):
    return reply.content[0].text


@pytest.fixture
def index(site, tmp_path):
    pages = [
        {"url": "https://alpha.example/", "title": "Alpha page", "text": "alpha facts here"},
        {"url": "https://alpha.example/2", "title": "Alpha two", "text": "more alpha"},
        {"url": "https://beta.example/", "title": "Beta page", "text": "beta facts here"},
        {
            "url": f"{site.url}/indexed",
            "html": f"<title>Indexed</title><a href='{site.url}/long.html'>the long page</a>",
        },
    ]
    path = tmp_path / "pages.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in pages))
    return LocalIndex.build(path)


@pytest.fixture
def browser(index, make_fetcher):
    return BrowserTool(index, fetcher=make_fetcher())


def test_a_call_is_answered_by_the_function_to_the_assistant_on_its_channel(browser, site):
    reply = call(browser, "open", {"id": f"{site.url}/notes.txt"}, channel="commentary")
    assert reply.author.role == Role.TOOL and reply.author.name == "browser.open"
    assert reply.recipient == "assistant" and reply.channel == "commentary"
    assert text(reply) == (
        f"[0] notes.txt ({site.url}/notes.txt)\n**viewing lines [0 - 1] of 2**\n\n"
        "L0: first note\nL1: second note"
    )


@pytest.mark.parametrize(
    ("function", "args", "expected"),
    [
        ("open", "{id: 3", "not valid JSON"),
        ("open", "[1, 2]", "expected a JSON object"),
        ("search", {"topn": 3}, "query: Field required"),
        ("search", {"query": "x", "topn": "many"}, "topn: Input should be a valid integer"),
        ("find", {"pattern": ["a"]}, "pattern: Input should be a valid string"),
        ("click", {"id": 1}, "there is no function 'browser.click'"),
        ("open", {"id": 0}, "no page is open yet"),
    ],
)
def test_bad_calls_get_an_error_text(browser, function, args, expected):
    reply = call(browser, function, args)
    assert reply.author.name == f"browser.{function}"
    assert text(reply).startswith("Error: ") and expected in text(reply)


def test_the_namespace_keeps_the_official_tools_and_states_the_behaviour(browser):
    official = ToolNamespaceConfig.browser()
    namespace = browser.namespace()
    assert namespace.tools == official.tools
    assert namespace.description.startswith(official.description.rsplit("\n", 1)[0])
    assert "Search results come from local." in namespace.description
    assert "timeout 1 s" in namespace.description


def test_two_searches_coexist_and_old_cursors_stay_valid(browser):
    first = text(call(browser, "search", {"query": "alpha facts"}))
    second = text(call(browser, "search", {"query": "beta"}))
    assert first.startswith("[0] Search results for `alpha facts`")
    assert second.startswith("[1] Search results for `beta`")
    assert "【0†Alpha page†alpha.example】" in first
    opened = text(call(browser, "open", {"id": 0, "cursor": 0}))
    assert opened.startswith("[2] Alpha page (https://alpha.example/)")
    assert "L0: alpha facts here" in opened
    assert text(call(browser, "open", {"id": 0, "cursor": 1})).startswith("[3] Beta page")


def test_topn_limits_the_results(browser):
    page = text(call(browser, "search", {"query": "alpha", "topn": 1}))
    assert "【0†" in page and "【1†" not in page
    assert "【1†" in text(call(browser, "search", {"query": "alpha", "topn": 5}))


def test_links_lead_from_indexed_pages_to_the_web_and_across_sites(browser, site):
    call(browser, "search", {"query": "indexed"})
    call(browser, "open", {"id": 0})  # the indexed page, served from the index
    long_page = text(call(browser, "open", {"id": 0}))  # its link, fetched from the site
    assert long_page.startswith(f"[2] Long ({site.url}/long.html)")
    index_page = text(call(browser, "open", {"id": f"{site.url}/index.html"}))
    assert "【1†other site†localhost】" in index_page
    other = text(call(browser, "open", {"id": 1}))
    assert other.startswith(f"[4] Other (http://localhost:{site.port}/other.html)")


def test_scrolling_continues_where_the_view_ended(browser, site):
    first = text(call(browser, "open", {"id": f"{site.url}/long.html"}))
    end = int(re.search(r"viewing lines \[0 - (\d+)\] of (\d+)", first).group(1))
    assert 20 < end < 200
    body = first.split("\n\n", 1)[1]
    assert len(load_o200k_harmony().encode_ordinary(body)) <= browser.token_budget
    scrolled = text(call(browser, "open", {}))
    assert f"**viewing lines [{end + 1} - " in scrolled
    assert scrolled.startswith("[1] Long")
    exact = text(call(browser, "open", {"cursor": 0, "loc": 100, "num_lines": 3}))
    assert "**viewing lines [100 - 102] of" in exact
    assert exact.count("\nL") == 3 and "\nL100: Paragraph 50:" in exact
    past = text(call(browser, "open", {"cursor": 0, "loc": 5000}))
    assert past.startswith("Error: loc 5000 is outside")


def test_find_shows_matches_with_context_and_links_to_them(browser, site):
    call(browser, "open", {"id": f"{site.url}/long.html"})
    found = text(call(browser, "find", {"pattern": "the NEEDLE"}))
    assert found.startswith("[1] Find results for text: `the NEEDLE` in `Long`")
    match = re.search(r"# 【0†match at L(\d+)】", found)
    line = int(match.group(1))
    assert "The Needle is here." in found and "Paragraph 399" in found  # context above
    opened = text(call(browser, "open", {"id": 0}))
    assert f"**viewing lines [{line} - " in opened and "The Needle is here." in opened
    missing = text(call(browser, "find", {"pattern": "zebra", "cursor": 0}))
    assert "No matches for `zebra`" in missing


def test_errors_from_fetching_reach_the_model_as_text(browser, site):
    assert "refused to connect to 169.254.169.254" in text(
        call(browser, "open", {"id": "http://169.254.169.254/latest/meta-data/"})
    )
    assert "HTTP 404" in text(call(browser, "open", {"id": f"{site.url}/missing"}))
    call(browser, "open", {"id": f"{site.url}/index.html"})
    assert "cursor 99 does not exist" in text(call(browser, "open", {"id": 1, "cursor": 99}))
    assert "no link with id 7 (valid ids: 0 to 1)" in text(call(browser, "open", {"id": 7}))


def test_view_source_shows_the_markup(browser, site):
    source = text(call(browser, "open", {"id": f"{site.url}/index.html", "view_source": True}))
    assert source.startswith(f"[0] index.html (view-source:{site.url}/index.html)")
    assert "<h1>Welcome</h1>" in source


def test_an_offline_browser_only_opens_indexed_pages(index):
    offline = BrowserTool(index, web=False)
    assert "there is no internet access" in offline.namespace().description
    reply = text(call(offline, "open", {"id": "https://elsewhere.example/"}))
    assert reply.startswith("Error:") and "no web access" in reply
    assert "alpha facts" in text(call(offline, "open", {"id": "https://alpha.example/"}))


def test_citations_become_links_and_sources(browser, site):
    call(browser, "open", {"id": f"{site.url}/long.html"})
    state = browser.state
    answer = "Foxes jump【0†L2-L3】. Again【0†L2-L3】 and one line 【0†L4】; bogus【9†L1】."
    linked, sources = resolve_citations(answer, state)
    assert [(s.number, s.start, s.end) for s in sources] == [(1, 2, 3), (2, 4, 4)]
    assert sources[0].quote.startswith("Paragraph 1: the quick brown fox")
    url = f"{site.url}/long.html"
    assert linked == (
        f"Foxes jump [1]({sources[0].link}). Again [1]({sources[0].link}) and one line "
        f"[2]({sources[1].link}); bogus."
    )
    assert sources[0].link.startswith(f"{url}#:~:text=Paragraph%201%3A%20the%20quick")
    full = format_answer(answer, state)
    assert full.endswith(f"Sources:\n1. [Long]({url}), lines 2-3\n2. [Long]({url}), line 4")


def test_the_description_is_true_for_the_backend_and_fetcher_it_has(index, make_fetcher):
    from tools.browser.backends.searxng import SearxngBackend

    offline = BrowserTool(index, web=False).namespace().description
    assert offline.endswith("there is no internet access.\nsources=local (default: local)")
    assert "sources=web" not in offline
    local_and_web = BrowserTool(index, fetcher=make_fetcher()).namespace().description
    assert "at most 100 kB; private and intranet addresses are refused, except those the " in (
        local_and_web
    )
    assert local_and_web.endswith("sources=local (default: local)")
    web = BrowserTool(SearxngBackend(base_url="http://127.0.0.1:9"))
    assert "(timeout 15 s, at most 5 MB; private and intranet addresses are refused);" in (
        web.namespace().description
    )
    assert web.namespace().description.endswith("\nsources=web (default: web)")
    asyncio.run(web.aclose())
