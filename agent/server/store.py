"""Responses kept for `previous_response_id`: bounded, least recently used first out,
optionally mirrored to a folder so they survive a restart."""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from agent.harmony import Message

_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class StoredResponse:
    """A response as returned, and the conversation (harmony messages) it ended with."""

    def __init__(self, response: dict[str, Any], messages: list[Message]) -> None:
        self.response = response
        self.messages = messages

    def to_json(self) -> str:
        return json.dumps(
            {"response": self.response, "messages": [m.to_dict() for m in self.messages]}
        )

    @classmethod
    def from_json(cls, text: str) -> StoredResponse:
        data = json.loads(text)
        return cls(data["response"], [Message.from_dict(m) for m in data["messages"]])


class ResponseStore:
    """At most `max_entries` responses in memory (and, with `folder`, on disk)."""

    def __init__(self, max_entries: int = 1024, folder: str | Path | None = None) -> None:
        self.max_entries = max_entries
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, response_id: str, entry: StoredResponse) -> None:
        with self._lock:
            self._entries[response_id] = entry
            self._entries.move_to_end(response_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            if self.folder is not None:
                path = self.folder / f"{response_id}.json"
                path.write_text(entry.to_json())
                others = [p for p in self.folder.glob("*.json") if p != path]
                others.sort(key=lambda p: p.stat().st_mtime_ns)
                for old in others[: max(len(others) + 1 - self.max_entries, 0)]:
                    old.unlink(missing_ok=True)

    def get(self, response_id: str) -> StoredResponse | None:
        with self._lock:
            if response_id in self._entries:
                self._entries.move_to_end(response_id)
                return self._entries[response_id]
            if self.folder is None or not _ID.match(response_id):
                return None
            path = self.folder / f"{response_id}.json"
            if not path.exists():
                return None
            entry = StoredResponse.from_json(path.read_text())
            self._entries[response_id] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
