"""What a fetched document becomes for the model: numbered text lines plus a table of links.

HTML goes through BeautifulSoup (lxml parser) and markdownify, which keep headings, lists,
tables and code readable; each link becomes `【id†text】` (`【id†text†domain】` when it
leaves the page's site) and each image `[Image n: alt]`. Plain text, JSON and PDF are
supported too. Lines are wrapped at 80 columns so that a citation `【cursor†Lx-Ly】` names a
short, precise span.
"""

from __future__ import annotations

import codecs
import contextlib
import html
import io
import json
import re
import textwrap
from dataclasses import dataclass, field
from email.message import Message as _HeaderParser
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin, urlsplit

import charset_normalizer
from bs4 import BeautifulSoup
from markdownify import ATX, MarkdownConverter, chomp

from agent.safe_text import safe_text
from tools.base import ToolError

if TYPE_CHECKING:
    from tools.browser.backends.base import SearchResult

LINE_WIDTH = 80
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
JSON_TYPES = frozenset({"application/json", "text/json"})
PDF_TYPES = frozenset({"application/pdf"})
MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown"})
# Elements whose content is never page text.
_DROPPED_TAGS = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "head")
_LINK_SCHEMES = ("http", "https", "file")
# Link and image markers, kept on one line when wrapping where they fit.
_MARKER = re.compile(r"【[^】]*】|\[Image \d+(?:: [^\]]*)?\]")
_LINK_MARKER = re.compile(r"【\d+†([^†】]*)(?:†[^】]*)?】")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
# Declared charsets that servers use by default, often for pages that are really UTF-8.
_DEFAULT_CHARSETS = frozenset({"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"})


class UnsupportedContent(ToolError):
    """A document the browser cannot show as text (images, archives, executables...)."""


@dataclass(frozen=True)
class RawResponse:
    """A fetched document before rendering: final URL, status, headers and body bytes."""

    url: str
    status: int
    headers: dict[str, str]
    content: bytes

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower case ('' when absent)."""
        return media_type_of(self.headers.get("content-type", ""))

    @property
    def charset(self) -> str | None:
        """The charset parameter of the Content-Type header, if any."""
        return _parse_content_type(self.headers.get("content-type", ""))[1]


@dataclass(frozen=True)
class Link:
    """A link target; `loc` is set when the link points at a line (find results)."""

    url: str
    text: str
    loc: int | None = None


@dataclass
class Page:
    """A rendered document: title, URL, wrapped lines, and the links their markers name."""

    url: str
    title: str
    lines: list[str]
    links: dict[int, Link] = field(default_factory=dict)


def _parse_content_type(value: str) -> tuple[str, str | None]:
    parser = _HeaderParser()
    parser["content-type"] = value or "application/octet-stream"
    media = parser.get_content_type() if value else ""
    charset = parser.get_param("charset")
    return media, charset.strip().lower() if isinstance(charset, str) else None


def media_type_of(content_type: str) -> str:
    """The media type of a Content-Type header value, lower case ('' when absent)."""
    return _parse_content_type(content_type)[0]


def is_supported(media_type: str) -> bool:
    """Whether a document of this media type can be rendered ('' means sniff the body)."""
    return (
        not media_type
        or media_type.startswith("text/")
        or media_type.endswith("+json")
        or media_type in HTML_TYPES | JSON_TYPES | PDF_TYPES
    )


def _try_decode(data: bytes, charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return data.decode(codecs.lookup(charset).name)
    except (LookupError, UnicodeDecodeError):
        return None


def decode_text(raw: RawResponse, html_page: bool) -> str:
    """The body as text: BOM, then the header charset, then a `<meta>` charset, then detection.

    A declared charset is only trusted if the bytes decode under it; a UTF-8 body labelled
    with a server-default single-byte charset (iso-8859-1) is read as UTF-8.
    """
    data = raw.content
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    declared = [raw.charset]
    if html_page:
        match = _META_CHARSET.search(data[:4096])
        declared.append(match.group(1).decode("ascii").lower() if match else None)
    for charset in declared:
        if charset in _DEFAULT_CHARSETS and (utf8 := _try_decode(data, "utf-8")) is not None:
            return utf8
        text = _try_decode(data, charset)
        if text is not None:
            return text
    best = charset_normalizer.from_bytes(data).best()
    return str(best) if best is not None else data.decode("utf-8", errors="replace")


def _site(url: str) -> str:
    """The host a link is compared with to decide whether it leaves the site."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def strip_markers(text: str) -> str:
    """Text with link markers replaced by their link text (for indexing and quoting)."""
    return _LINK_MARKER.sub(r"\1", text)


def _clean_marker_text(text: str) -> str:
    return " ".join(text.replace("【", "[").replace("】", "]").replace("†", " ").split())


class _TextConverter(MarkdownConverter):
    """markdownify with the browser's link and image markers."""

    def __init__(self, base_url: str, page_url: str) -> None:
        super().__init__(
            heading_style=ATX,
            bullets="-",
            escape_asterisks=False,
            escape_underscores=False,
            escape_misc=False,
        )
        self.base_url = base_url
        self.site = _site(page_url)
        self.links: dict[int, Link] = {}
        self.images = 0

    def convert_a(self, el, text, parent_tags):
        prefix, suffix, text = chomp(text)
        href = (el.get("href") or "").strip()
        url = urljoin(self.base_url, href) if href else ""
        if not url or urlsplit(url).scheme not in _LINK_SCHEMES or href.startswith("#"):
            return f"{prefix}{text}{suffix}"
        label = _clean_marker_text(text) or _clean_marker_text(el.get("title") or "") or url
        link_id = len(self.links)
        self.links[link_id] = Link(url=url, text=label)
        domain = _site(url)
        if domain and domain != self.site:
            return f"{prefix}【{link_id}†{label}†{domain}】{suffix}"
        return f"{prefix}【{link_id}†{label}】{suffix}"

    def convert_img(self, el, text, parent_tags):
        self.images += 1
        alt = _clean_marker_text(el.get("alt") or "")
        return f"[Image {self.images}: {alt}]" if alt else f"[Image {self.images}]"


def wrap_lines(text: str, width: int = LINE_WIDTH) -> list[str]:
    """Split into lines of at most `width` columns, keeping indentation and link markers whole
    where they fit; runs of blank lines become one. Control sequences are defused first."""
    lines: list[str] = []
    for raw_line in safe_text(text).replace("\xa0", " ").split("\n"):
        line = raw_line.rstrip()
        if not line:
            if lines and lines[-1]:
                lines.append("")
            continue
        if len(line) <= width:
            lines.append(line)
            continue
        protected = _MARKER.sub(lambda m: m.group(0).replace(" ", "\xa0"), line)
        indent = protected[: len(protected) - len(protected.lstrip())]
        wrapped = textwrap.wrap(
            protected,
            width=width,
            subsequent_indent=indent if len(indent) < width // 2 else "",
            break_on_hyphens=False,
        )
        lines.extend(part.replace("\xa0", " ") for part in wrapped)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def html_to_page(markup: str, url: str) -> Page:
    """Render HTML: title, readable text with link and image markers, wrapped lines."""
    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text().split()) if title_tag else ""
    base_tag = soup.find("base", href=True)
    base_url = urljoin(url, base_tag["href"]) if base_tag else url
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    for tag in soup.find_all(hidden=True):
        tag.decompose()
    converter = _TextConverter(base_url=base_url, page_url=url)
    text = converter.convert_soup(soup)
    if not title:
        heading = soup.find(["h1", "h2"])
        title = " ".join(heading.get_text().split()) if heading else _title_from_url(url)
    return Page(url=url, title=safe_text(title), lines=wrap_lines(text), links=converter.links)


def text_to_page(text: str, url: str, title: str | None = None) -> Page:
    """A plain-text document: its lines, wrapped."""
    return Page(url=url, title=safe_text(title or _title_from_url(url)), lines=wrap_lines(text))


def _title_from_url(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return name or parts.hostname or url


def _pdf_to_page(raw: RawResponse) -> Page:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw.content))
        if reader.is_encrypted:
            raise UnsupportedContent(f"{raw.url} is an encrypted PDF; its text cannot be read.")
        text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
        title = reader.metadata.title if reader.metadata else None
    except (PdfReadError, ValueError, KeyError) as exc:
        raise UnsupportedContent(f"{raw.url} is not a readable PDF ({exc}).") from exc
    return text_to_page(text, raw.url, title=title)


def _json_to_page(raw: RawResponse) -> Page:
    text = decode_text(raw, html_page=False)
    # Malformed JSON is still text worth reading: shown as sent.
    with contextlib.suppress(json.JSONDecodeError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return text_to_page(text, raw.url)


def _sniff(raw: RawResponse) -> str:
    """A media type for a response that did not declare one."""
    head = raw.content[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if re.match(rb"(?i)<(!doctype html|html|head|body|title|p|div)\b", head):
        return "text/html"
    if b"\x00" in head:
        return "application/octet-stream"
    return "text/plain"


def render(raw: RawResponse) -> Page:
    """Turn a fetched document into a Page according to its (declared or sniffed) type."""
    media = raw.media_type or _sniff(raw)
    if media in PDF_TYPES:
        return _pdf_to_page(raw)
    if media in JSON_TYPES or media.endswith("+json"):
        return _json_to_page(raw)
    if media in HTML_TYPES:
        return html_to_page(decode_text(raw, html_page=True), raw.url)
    if media.startswith("text/"):
        text = decode_text(raw, html_page=False)
        heading = re.search(r"(?m)^# +(.+)$", text) if media in MARKDOWN_TYPES else None
        return text_to_page(text, raw.url, title=heading.group(1).strip() if heading else None)
    raise unsupported(raw.url, media)


def unsupported(url: str, media_type: str) -> UnsupportedContent:
    """The error for a document type the browser cannot show."""
    return UnsupportedContent(
        f"{url} is {media_type}, which the browser cannot show as text; open an HTML, text, "
        "JSON or PDF page instead."
    )


def search_results_page(query: str, results: list[SearchResult], source: str) -> Page:
    """The results of a search as a page whose links are the results (title, snippet).

    Built as HTML with every field escaped, so titles or snippets containing markup are
    shown as text rather than interpreted.
    """
    items = "".join(
        f'<p><a href="{html.escape(r.url, quote=True)}">{html.escape(r.title or r.url)}</a>'
        f"<br>{html.escape(r.snippet)}</p>"
        for r in results
    )
    body = items or "<p>No results.</p>"
    title = f"Search results for `{query}`"
    markup = f"<html><head><title>{html.escape(title)}</title></head><body>{body}</body></html>"
    return html_to_page(markup, f"search:{source}?q={quote(query)}")
