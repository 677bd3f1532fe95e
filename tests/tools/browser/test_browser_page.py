"""Rendering documents to numbered-line text: HTML, charsets, PDF, JSON, text, results."""

from __future__ import annotations

import asyncio

import pytest

from tools.browser.backends.base import SearchResult
from tools.browser.page import (
    RawResponse,
    UnsupportedContent,
    html_to_page,
    render,
    search_results_page,
    strip_markers,
    wrap_lines,
)

ARTICLE = """<html><head><title>The  Article</title><style>p { color: red }</style>
<script>var secret = "do not show";</script></head><body>
<nav><a href="/">Home</a></nav>
<h1>Main heading</h1>
<p>Intro with a <a href="/page2.html">relative link</a>, an
<a href="https://www.other.org/x?y=1">external link</a> and
<a href="https://sub.site.test/z">same site, other host</a>.</p>
<h2>Details</h2>
<ul><li>first item</li><li>second item</li></ul>
<ol><li>step one</li></ol>
<table><tr><th>Name</th><th>Value</th></tr><tr><td>alpha</td><td>1</td></tr></table>
<pre><code>def double(x):
    return x * 2</code></pre>
<p><img src="a.png" alt="A diagram"> <img src="b.png"> <a href="javascript:void(0)">js</a>
<a href="#top">top</a> <a href="mailto:a@b.c">mail</a></p>
<noscript>enable javascript</noscript><div hidden>hidden text</div>
</body></html>"""


@pytest.fixture
def article():
    return html_to_page(ARTICLE, "https://site.test/docs/article.html")


def test_html_structure_is_kept_readable(article):
    text = "\n".join(article.lines)
    assert article.title == "The Article"
    assert "# Main heading" in article.lines and "## Details" in article.lines
    assert "- first item" in article.lines and "1. step one" in article.lines
    assert "| Name | Value |" in article.lines and "| alpha | 1 |" in article.lines
    assert "    return x * 2" in article.lines  # code keeps its indentation
    for dropped in ("secret", "color: red", "enable javascript", "hidden text"):
        assert dropped not in text


def test_links_become_numbered_markers_with_foreign_domains(article):
    text = "\n".join(article.lines)
    assert "【0†Home】" in text
    assert "【1†relative link】" in text
    assert "【2†external link†other.org】" in text
    assert "【3†same site, other host†sub.site.test】" in text
    assert article.links[1].url == "https://site.test/page2.html"
    assert article.links[2].url == "https://www.other.org/x?y=1"
    assert len(article.links) == 4  # javascript:, #fragment and mailto: are not links
    assert "[Image 1: A diagram] [Image 2]" in text


def test_strip_markers_keeps_the_link_text(article):
    assert strip_markers("see 【2†external link†other.org】 now") == "see external link now"


def test_lines_are_wrapped_without_breaking_markers():
    text = "word " * 30 + "【7†a link whose text has several words†example.org】 end"
    lines = wrap_lines(text, width=80)
    assert all(len(line) <= 80 for line in lines)
    assert any("【7†a link whose text has several words†example.org】" in line for line in lines)
    assert wrap_lines("a\n\n\n\nb\n\n") == ["a", "", "b"]


def test_search_results_are_escaped_and_linked():
    results = [
        SearchResult("https://a.example/1", "<script>alert(1)</script> & Co", "x < y & z"),
        SearchResult("https://b.example/2", "Second", "plain"),
    ]
    page = search_results_page("tags & <b>", results, "exa")
    text = "\n".join(page.lines)
    assert page.title == "Search results for `tags & <b>`"
    assert "【0†<script>alert(1)</script> & Co†a.example】" in text
    assert "x < y & z" in text
    assert page.links[1].url == "https://b.example/2"


def fetched(site, make_fetcher, path):
    return render(asyncio.run(make_fetcher().fetch(f"{site.url}{path}")))


def test_a_page_from_the_site_with_links_to_another_domain(site, make_fetcher):
    page = fetched(site, make_fetcher, "/index.html")
    text = "\n".join(page.lines)
    assert page.title == "Index"
    assert "【0†long page】" in text
    assert "【1†other site†localhost】" in text
    assert page.links[0].url == f"{site.url}/long.html"
    assert "[Image 1: A cat]" in text


def test_a_mislabelled_charset_falls_back_to_meta(site, make_fetcher):
    page = fetched(site, make_fetcher, "/mislabelled")
    assert page.title == "Café"
    assert "crème brûlée délicieux" in "\n".join(page.lines)


def test_utf8_served_as_latin1_is_read_as_utf8(site, make_fetcher):
    page = fetched(site, make_fetcher, "/utf8-as-latin1")
    assert page.title == "Grüße" and "schöne Straße" in page.lines[0]


def test_undeclared_charset_is_detected(site, make_fetcher):
    page = fetched(site, make_fetcher, "/undeclared.txt")  # KOI8-R, no charset declared
    assert page.lines[0].startswith("Съешь же ещё этих мягких французских булок")


def test_pdf_json_and_text(site, make_fetcher):
    assert fetched(site, make_fetcher, "/doc.pdf").lines == ["Hello PDF world"]
    data = fetched(site, make_fetcher, "/data.json")
    assert data.lines[:3] == ["{", '  "name": "oss-agent",', '  "tools": [']
    notes = fetched(site, make_fetcher, "/notes.txt")
    assert notes.lines == ["first note", "second note"] and notes.title == "notes.txt"


def test_unreadable_documents_are_clear_errors():
    with pytest.raises(UnsupportedContent, match="image/png"):
        render(RawResponse("https://x.test/a.png", 200, {"content-type": "image/png"}, b"\x89PNG"))
    with pytest.raises(UnsupportedContent, match="not a readable PDF"):
        render(
            RawResponse("https://x.test/a.pdf", 200, {"content-type": "application/pdf"}, b"junk")
        )
    sniffed = render(RawResponse("https://x.test/p", 200, {}, b"<html><title>T</title>hi</html>"))
    assert sniffed.title == "T"
