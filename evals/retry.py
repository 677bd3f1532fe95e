"""Which failures are worth retrying: the one place the sweep asks.

Transient: the connection failed or timed out, or the server answered a status that
`agent.http_retry` (the project's one retry policy) retries. Anything else (401, 404, a
malformed reply, a bug) is permanent: retrying cannot help, so the preflight stops the run
and a sample records the error at once.
"""

from __future__ import annotations

import re

import httpx

from agent.http_retry import TRANSIENT_STATUS


def transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUS


def is_transient(error: BaseException) -> bool:
    """Whether `error` (from an engine or an HTTP client) may go away on a retry."""
    status = getattr(error, "status_code", None)
    if isinstance(error, httpx.HTTPStatusError):
        status = error.response.status_code
    if isinstance(status, int):
        return transient_status(status)
    if isinstance(error, httpx.TransportError | ConnectionError | TimeoutError):
        return True
    # runtime.remote.RemoteError carries its cause in the message (and `__cause__`).
    if isinstance(error.__cause__, httpx.TransportError):
        return True
    text = str(error)
    match = re.search(r"answered HTTP (\d{3})", text)
    if match:
        return transient_status(int(match.group(1)))
    return bool(re.search(r"cannot connect|did not answer in time|broke off", text))
