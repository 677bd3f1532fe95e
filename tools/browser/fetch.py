"""Fetching pages for the model: guarded, bounded, cached, and explicit about failures.

Redirects are followed here, one hop at a time, so that the egress guard checks every hop.
Each hop resolves the host once, checks the addresses, and connects to the checked address
(the URL keeps its host name for the Host header and TLS SNI/certificate check), which closes
the DNS-rebinding gap. How one hop travels is pluggable: in-process with httpx (`HttpxHop`)
or inside a throwaway container (`tools.browser.sandbox.DockerHop`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin

import httpx

from agent.http_retry import RetryPolicy
from tools.base import ToolError
from tools.browser.guard import EgressGuard
from tools.browser.page import RawResponse, is_supported, media_type_of, unsupported

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "oss-agent-browser/0.1 (+https://github.com/openai/gpt-oss)"
ACCEPT = (
    "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,"
    "application/pdf;q=0.8,*/*;q=0.1"
)


class FetchError(ToolError):
    """A page that could not be fetched; the text says why and what to try instead."""


class TooLarge(FetchError):
    """The body exceeds the configured size limit."""


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one fetch. `timeout` applies to each hop (connect, headers and body)."""

    timeout: float = 15.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    retries: int = 2
    backoff: float = 0.5
    max_retry_after: float = 10.0


BodyWanted = Callable[[int, Mapping[str, str]], bool]


class Hop(Protocol):
    """Sends one GET for `url` to the already checked address `ip`; follows no redirects.

    Returns the response with lower-case header names; the body is read only when
    `wants_body(status, headers)` says so, and never beyond `max_bytes` (TooLarge).
    """

    async def __call__(
        self, url: httpx.URL, ip: str, *, timeout: float, max_bytes: int, wants_body: BodyWanted
    ) -> RawResponse: ...


class HttpxHop:
    """One hop in-process with httpx, connecting to the pinned address.

    Connections are not kept alive: a pooled connection is keyed by address, and reusing
    one made for another host name would skip that host's TLS certificate check.
    """

    def __init__(self, user_agent: str = USER_AGENT, verify: bool = True) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # an environment proxy would bypass the address pinning
            verify=verify,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": user_agent, "Accept": ACCEPT},
            event_hooks={"response": [_hide_location]},
        )

    async def __call__(
        self, url: httpx.URL, ip: str, *, timeout: float, max_bytes: int, wants_body: BodyWanted
    ) -> RawResponse:
        request = self._client.build_request(
            "GET",
            url.copy_with(host=ip),
            headers={"Host": url.netloc.decode("ascii")},
            extensions={"sni_hostname": url.raw_host.decode("ascii")},
            timeout=timeout,
        )
        async with asyncio.timeout(timeout):
            response = await self._client.send(request, stream=True)
            try:
                headers = {k.lower(): v for k, v in response.headers.items()}
                if _LOCATION in response.extensions:
                    headers["location"] = response.extensions[_LOCATION]
                body = b""
                if wants_body(response.status_code, headers):
                    body = await _read_capped(response, max_bytes, str(url))
            finally:
                await response.aclose()
        return RawResponse(url=str(url), status=response.status_code, headers=headers, content=body)

    async def aclose(self) -> None:
        await self._client.aclose()


_LOCATION = "oss_agent.location"


async def _hide_location(response: httpx.Response) -> None:
    """Move a redirect's Location out of httpx's sight. Even when not following redirects,
    httpx builds the next request and raises on a target it cannot parse (`data:`,
    `about:blank`, `mailto:`); the fetcher judges every target itself, and says why."""
    location = response.headers.pop("location", None)
    if location is not None:
        response.extensions = {**response.extensions, _LOCATION: location}


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(_too_large(url, max_bytes, f"{int(declared)} bytes declared"))
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(_too_large(url, max_bytes, "the body kept going"))
    return bytes(body)


def _too_large(url: str, max_bytes: int, detail: str) -> str:
    return (
        f"{url} is larger than the {max_bytes}-byte limit ({detail}); stopped reading. "
        "Look for a smaller version of the document (an abstract, a text or HTML version)."
    )


def _wants_body(status: int, headers: Mapping[str, str]) -> bool:
    return 200 <= status < 300 and is_supported(media_type_of(headers.get("content-type", "")))


class Fetcher:
    """GETs pages for one browsing session: guard on every hop, limits, retries, a cache."""

    def __init__(
        self,
        guard: EgressGuard | None = None,
        limits: FetchLimits | None = None,
        hop: Hop | None = None,
    ) -> None:
        self.guard = guard or EgressGuard()
        self.limits = limits or FetchLimits()
        self.hop: Hop = hop or HttpxHop()
        self._cache: dict[str, RawResponse] = {}

    async def fetch(self, url: str) -> RawResponse:
        """The final response for `url` after redirects; raises FetchError or EgressDenied."""
        if url in self._cache:
            return self._cache[url]
        current = url
        for _ in range(self.limits.max_redirects + 1):
            response = await self._fetch_hop(current)
            location = response.headers.get("location")
            if response.status in REDIRECT_STATUSES and location:
                try:
                    current = urljoin(current, location)
                except ValueError as exc:
                    raise FetchError(
                        f"{current} redirected to {location!r}, which is not a valid URL ({exc}); "
                        "try another link."
                    ) from exc
                continue
            self._check(response)
            self._cache[url] = self._cache[response.url] = response
            return response
        raise FetchError(
            f"{url} redirected more than {self.limits.max_redirects} times (last: {current}); "
            "the site may be looping. Try another link."
        )

    def _check(self, response: RawResponse) -> None:
        if response.status >= 400:
            retry_after = response.headers.get("retry-after")
            wait = f"; the server asks to retry after {retry_after}" if retry_after else ""
            hint = (
                "the page does not exist or is not public; try another result"
                if response.status < 500 or response.status == 429
                else f"the server failed after {self.limits.retries + 1} tries; try later"
            )
            raise FetchError(f"HTTP {response.status} for {response.url}{wait}: {hint}.")
        if not 200 <= response.status < 300:
            raise FetchError(f"HTTP {response.status} for {response.url} has no page to show.")
        if not is_supported(response.media_type):
            raise unsupported(response.url, response.media_type)

    async def _fetch_hop(self, url: str) -> RawResponse:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:  # ValueError: e.g. a malformed IDNA host
            raise FetchError(f"{url!r} is not a valid URL ({exc}).") from exc
        port = parsed.port or _default_port(parsed)
        if not 0 < port < 65536:
            raise FetchError(f"{url!r} is not a valid URL (port {port} is out of range).")
        ip = await self.guard.resolve(parsed.scheme, parsed.raw_host.decode("ascii"), port)
        limits = self.limits
        policy = RetryPolicy(limits.retries, limits.backoff, limits.max_retry_after)
        attempt = 0
        while True:
            response = await self._send(parsed, ip)
            delay = policy.delay(attempt, response.status, response.headers)
            if delay is None:
                return response
            await asyncio.sleep(delay)
            attempt += 1

    async def _send(self, url: httpx.URL, ip: str) -> RawResponse:
        timeout = self.limits.timeout
        try:
            return await self.hop(
                url, ip, timeout=timeout, max_bytes=self.limits.max_bytes, wants_body=_wants_body
            )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise FetchError(
                f"{url} did not answer within {timeout:g} s; the site may be slow or down. "
                "Try again later or another source."
            ) from exc
        except httpx.ConnectError as exc:
            if "SSL" in str(exc) or "CERTIFICATE" in str(exc).upper():
                raise FetchError(
                    f"TLS handshake with {url.host} failed ({exc}); the site's certificate is "
                    "not trusted. Try the http:// address or another source."
                ) from exc
            raise FetchError(
                f"could not connect to {url.host} ({exc}); try another source."
            ) from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"fetching {url} failed ({exc}); try another source.") from exc

    async def aclose(self) -> None:
        """Close the hop's connections, if it holds any."""
        close = getattr(self.hop, "aclose", None)
        if close is not None:
            await close()


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80
