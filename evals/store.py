"""A run's folder: `run.json` (the settings) and `results.jsonl` (one line per sample).

Each sample is appended the moment it is graded, as one `write` of one line on a file
opened for appending, then flushed to disk (fsync). A run killed at any point (kill -9
included) leaves whole lines plus at most one partial last line, which the next run cuts
off before appending. A sample's key is (benchmark, effort, item, repeat); when a key was
recorded more than once (an error, retried by a later run) the last record counts, so
nothing is counted twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

RESULTS = "results.jsonl"
SETTINGS = "run.json"

Key = tuple[str, str, str, int]


class RunSettings(BaseModel):
    """What a run measures. The fields in `SAME_ON_RESUME` must match to resume a run;
    benchmarks, efforts, repeats and limit may grow."""

    model: str
    benchmarks: list[str]
    efforts: list[str]
    repeats: int = 1
    limit: int | None = None
    tools: list[str] = []
    browser_backend: str | None = None
    max_tokens: int = 32768
    max_turns: int = 20
    temperature: float | None = None  # None: the model's default (greedy for nano)
    seed: int = 0
    grader_model: str | None = None
    sample_data: bool = False
    data: dict[str, str] = {}

    SAME_ON_RESUME: ClassVar[tuple[str, ...]] = (
        "model",
        "tools",
        "max_tokens",
        "max_turns",
        "temperature",
        "seed",
        "grader_model",
        "sample_data",
        "data",
    )


class ResumeError(ValueError):
    """The folder holds a run with settings that would make its samples incomparable."""


def key_of(record: dict[str, Any]) -> Key:
    return (record["benchmark"], record["effort"], str(record["item"]), int(record["repeat"]))


class RunStore:
    """Reads and appends a run folder's results."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.results = self.folder / RESULTS
        self.settings_path = self.folder / SETTINGS

    # -- settings -------------------------------------------------------------------------

    def settings(self) -> RunSettings | None:
        if not self.settings_path.exists():
            return None
        return RunSettings.model_validate_json(self.settings_path.read_text())

    def begin(self, settings: RunSettings) -> None:
        """Start or resume: check the folder's settings agree, then record the new ones."""
        previous = self.settings()
        if previous is not None:
            changed = [
                f"{name}: {getattr(previous, name)!r} -> {getattr(settings, name)!r}"
                for name in RunSettings.SAME_ON_RESUME
                if getattr(previous, name) != getattr(settings, name)
            ]
            if changed:
                raise ResumeError(
                    f"{self.folder} holds a run with other settings ({'; '.join(changed)}); "
                    "use another --out folder, or the same settings to resume it"
                )
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.settings_path.with_suffix(".tmp")
        tmp.write_text(settings.model_dump_json(indent=1))
        os.replace(tmp, self.settings_path)
        self._cut_partial_line()

    def _cut_partial_line(self) -> None:
        """A kill mid-write can leave a last line without its newline: drop it."""
        if not self.results.exists():
            return
        with self.results.open("rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    # -- records --------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.results}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """One record per sample: the last one written for each key."""
        latest: dict[Key, dict[str, Any]] = {}
        for record in self._lines():
            latest[key_of(record)] = record
        return list(latest.values())

    def done(self) -> set[Key]:
        """Keys with a graded result (errors are run again on resume)."""
        return {key_of(r) for r in self.records() if r["outcome"] != "error"}

    def _lines(self) -> Iterable[dict[str, Any]]:
        if not self.results.exists():
            return
        with self.results.open(encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    return  # a partial last line from a killed run
                yield json.loads(line)
