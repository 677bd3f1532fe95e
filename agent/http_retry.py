"""One retry policy for every HTTP client here (remote engines, the browser, search APIs).

Only transient failures are retried: a refused or dropped connection, 408, 409, 429 and the
5xx statuses a restarting or overloaded server sends (not 501 or 505: those never change).
A server's `Retry-After` (seconds or an HTTP date) is honoured up to `max_wait`; a server
asking for longer is not waited for, the caller reports it instead. Attempts are bounded.
"""

from __future__ import annotations

import datetime
import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass

TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a `Retry-After` header asks for, in seconds (0 for a date in the past);
    None when there is no such header or it cannot be read."""
    value = (headers.get("retry-after") or headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, source unknown
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` attempts after the first; waits of `backoff` seconds doubling per attempt,
    never more than `max_wait`."""

    retries: int = 2
    backoff: float = 0.5
    max_wait: float = 10.0

    def delay(
        self, attempt: int, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (0-based) before the next,
        or None to give up. `status` None means the connection failed (transient)."""
        if attempt >= self.retries:
            return None
        if status is not None and status not in TRANSIENT_STATUS:
            return None
        asked = retry_after_seconds(headers or {})
        if asked is None:
            return min(self.backoff * 2**attempt, self.max_wait)
        return asked if asked <= self.max_wait else None
