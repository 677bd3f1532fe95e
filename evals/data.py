"""Benchmark data: csv, jsonl and parquet files from a path or a public URL.

A URL is downloaded once into the cache (`$OSS_AGENT_EVAL_CACHE`, default
`~/.cache/oss-agent/evals/<host>/<path>`) and its sha256 recorded in the cache's
`checksums.json`; later loads check the file still matches. Offline, the error names the
file and where to put it.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

SAMPLES = Path(__file__).parent / "data"


class DataError(RuntimeError):
    """Benchmark data that cannot be had or read; the message says what to do."""


def cache_dir() -> Path:
    root = os.environ.get("OSS_AGENT_EVAL_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "oss-agent" / "evals"


def cached_path(url: str) -> Path:
    """Where the cache keeps (or expects) the file behind `url`."""
    parts = urlsplit(url)
    return cache_dir() / parts.netloc / parts.path.lstrip("/")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_path() -> Path:
    return cache_dir() / "checksums.json"


def _manifest() -> dict[str, Any]:
    path = _manifest_path()
    return json.loads(path.read_text()) if path.exists() else {}


def _record(url: str, path: Path, how: str) -> str:
    manifest = _manifest()
    checksum = _sha256(path)
    manifest[url] = {
        "file": str(path),
        "sha256": checksum,
        "bytes": path.stat().st_size,
        "how": how,
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    _manifest_path().parent.mkdir(parents=True, exist_ok=True)
    tmp = _manifest_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(_manifest_path())
    return checksum


def fetch(url: str, *, timeout: float = 60.0) -> Path:
    """The local copy of `url`, downloaded on first use; its checksum is checked each time."""
    path = cached_path(url)
    if path.exists():
        known = _manifest().get(url)
        if known is None:  # put there by hand, as the offline error asks
            _record(url, path, how="placed by hand")
        elif known["sha256"] != _sha256(path):
            raise DataError(
                f"{path} does not match the checksum recorded when it was downloaded "
                f"({known['sha256'][:12]}...); delete it to download {url} again"
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            with partial.open("wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"cannot download {url} ({type(exc).__name__}: {exc}). Offline? Download it "
            f"elsewhere and put it at {path}, or pass the file's path instead of the URL."
        ) from exc
    partial.replace(path)
    _record(url, path, how="downloaded")
    return path


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .csv, .jsonl (or .json list) or .parquet file, as dicts."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such data file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        if suffix == ".jsonl":
            rows = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{number} is not JSON: {exc}") from None
            return rows
        if suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise DataError(f"{path} must hold a JSON list of records")
            return rows
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    raise DataError(f"unknown data format {suffix!r} for {path}: use .csv, .jsonl or .parquet")


def load_records(source: str | Path) -> list[dict[str, Any]]:
    """Rows from a local path or an `http(s)://` URL (cached)."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        return read_records(fetch(text))
    return read_records(Path(text).expanduser())
