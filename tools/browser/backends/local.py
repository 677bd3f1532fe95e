"""Offline search over a local collection: an SQLite FTS5 index ranked by BM25.

The index is built from a folder of HTML, Markdown or text files and/or JSONL files of pages
(`{"url", "title", "text" | "html"}` per line). It stores each document, so opening a result
(or a link between indexed documents) is served from the index, with no network at all.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from tools.base import ToolError
from tools.browser.backends.base import SearchBackend, SearchResult
from tools.browser.page import Page, RawResponse, render, strip_markers

FILE_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY, url TEXT UNIQUE NOT NULL, title TEXT NOT NULL,
    content_type TEXT NOT NULL, content BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(title, body, tokenize='porter unicode61');
"""
# Title matches count five times as much as body matches.
_SEARCH = """
SELECT d.url, d.title, snippet(docs_fts, 1, '', '', ' … ', 24)
FROM docs_fts JOIN docs AS d ON d.id = docs_fts.rowid
WHERE docs_fts MATCH ? ORDER BY bm25(docs_fts, 5.0, 1.0) LIMIT ?
"""


class LocalIndex(SearchBackend):
    """A searchable, openable document collection in one SQLite file (or in memory)."""

    name = "local"

    def __init__(self, db_path: str | Path = ":memory:") -> None:
        self._db = sqlite3.connect(str(db_path), check_same_thread=False)
        self._db.executescript(_SCHEMA)

    @classmethod
    def build(cls, source: str | Path, db_path: str | Path = ":memory:") -> LocalIndex:
        """An index of every supported file under `source` (a folder or one file)."""
        index = cls(db_path)
        index.add_path(source)
        return index

    def add_path(self, source: str | Path) -> int:
        """Index a folder (recursively) or a file; returns how many documents were added."""
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; give a folder of documents.")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        added = 0
        for file in files:
            suffix = file.suffix.lower()
            if suffix == ".jsonl":
                added += self.add_jsonl(file)
            elif suffix in FILE_TYPES:
                uri = file.resolve().as_uri()
                self.add_document(uri, file.read_bytes(), FILE_TYPES[suffix])
                added += 1
        self._db.commit()
        return added

    def add_jsonl(self, file: Path) -> int:
        """Index the pages of a JSONL file: one `{"url", "title", "text" | "html"}` per line."""
        added = 0
        with file.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    url = record["url"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(f"{file}:{number}: expected a JSON object with a url") from exc
                if record.get("html") is not None:
                    content, media = record["html"], "text/html"
                else:
                    content, media = record.get("text") or "", "text/plain"
                self.add_document(url, content.encode("utf-8"), media, title=record.get("title"))
                added += 1
        self._db.commit()
        return added

    def add_document(
        self, url: str, content: bytes, content_type: str, title: str | None = None
    ) -> None:
        """Index one document (replacing any document with the same URL)."""
        raw = RawResponse(url, 200, {"content-type": f"{content_type}; charset=utf-8"}, content)
        page = render(raw)
        title = title or page.title
        body = strip_markers("\n".join(page.lines))
        old = self._db.execute("SELECT id FROM docs WHERE url = ?", (url,)).fetchone()
        if old:
            self._db.execute("DELETE FROM docs WHERE id = ?", old)
            self._db.execute("DELETE FROM docs_fts WHERE rowid = ?", old)
        cursor = self._db.execute(
            "INSERT INTO docs (url, title, content_type, content) VALUES (?, ?, ?, ?)",
            (url, title, content_type, content),
        )
        self._db.execute(
            "INSERT INTO docs_fts (rowid, title, body) VALUES (?, ?, ?)",
            (cursor.lastrowid, title, body),
        )

    async def search(self, query: str, topn: int) -> list[SearchResult]:
        # Words only, OR-ed: the model's queries are natural language, not FTS5 syntax,
        # and BM25 already ranks documents matching more of the words first.
        words = re.findall(r"\w+", query.lower())
        if not words:
            raise ToolError("the search query has no words; give some keywords.")
        match = " OR ".join(f'"{word}"' for word in words)
        rows = self._db.execute(_SEARCH, (match, topn)).fetchall()
        return [SearchResult(url=url, title=title, snippet=snip) for url, title, snip in rows]

    async def fetch(self, url: str) -> Page | None:
        row = self._db.execute(
            "SELECT title, content_type, content FROM docs WHERE url = ?", (url.split("#")[0],)
        ).fetchone()
        if row is None:
            return None
        title, content_type, content = row
        headers = {"content-type": f"{content_type}; charset=utf-8"}
        page = render(RawResponse(url, 200, headers, bytes(content)))
        page.title = title
        return page

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM docs").fetchone()[0]

    async def aclose(self) -> None:
        self._db.close()
