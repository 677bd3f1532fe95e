"""Egress guard: the browser only reaches public internet addresses unless told otherwise.

The model chooses the URLs, and pages can redirect anywhere, so every hop is checked: the
scheme, then every address the host name resolves to. The fetcher then connects to the very
address that was checked (see `fetch.py`), so a second DNS answer cannot slip a private
address in between the check and the connection (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from tools.base import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = ("http", "https")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressDenied(ToolError):
    """A URL the browser refuses to fetch: bad scheme or a non-public address."""


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` must not be contacted, or None for a public unicast address.

    IPv6 forms that embed an IPv4 address (mapped, 6to4, Teredo, NAT64) are judged by the
    IPv4 address they lead to, since that is where the packets end up.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if ip.teredo:
            embedded = ip.teredo[1]
        if ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            return f"{reason} (embedded in {ip})" if reason else None
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local (includes cloud metadata at 169.254.169.254)"),
        (ip.is_multicast, "multicast"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "carrier-grade NAT"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "not globally routable"),
    )
    return next((reason for hit, reason in checks if hit), None)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


@dataclass
class EgressGuard:
    """Decides which hosts the browser may contact.

    `allow_hosts` (exact host names) and `allow_networks` (CIDRs such as "10.1.0.0/16" or
    "127.0.0.1/32") open intranet or test servers explicitly; nothing else that is not a
    public address is ever contacted. `resolver` is injectable for tests and custom DNS.
    """

    allow_hosts: Iterable[str] = ()
    allow_networks: Iterable[str] = ()
    resolver: Resolver = system_resolver
    _hosts: frozenset[str] = field(init=False, repr=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._hosts = frozenset(h.lower().rstrip(".") for h in self.allow_hosts)
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.allow_networks)

    @property
    def allows_private(self) -> bool:
        """Whether an operator opened some non-public hosts or networks."""
        return bool(self._hosts or self._networks)

    def check_address(self, ip: IPAddress, host: str = "") -> None:
        """Raise EgressDenied unless `ip` is public, allow-listed, or `host` is allow-listed."""
        if host.lower().rstrip(".") in self._hosts:
            return
        if any(ip.version == net.version and ip in net for net in self._networks):
            return
        reason = forbidden_reason(ip)
        if reason:
            shown = f"{host} ({ip})" if host and host != str(ip) else str(ip)
            raise EgressDenied(
                f"refused to connect to {shown}: the address is {reason}. The browser only "
                "reaches public addresses; an operator can allow intranet hosts with "
                "EgressGuard(allow_hosts=..., allow_networks=...)."
            )

    async def resolve(self, scheme: str, host: str, port: int) -> str:
        """Check the scheme, resolve `host` once and return the address to connect to.

        Every answer is checked, not only the first: a mixed answer (one public, one private
        address) is refused, since the connection could otherwise be steered to either.
        """
        if scheme not in ALLOWED_SCHEMES:
            raise EgressDenied(f"refused {scheme}: URLs: only http and https can be opened.")
        if not host:
            raise EgressDenied("the URL has no host name; give a fully qualified http(s) URL.")
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                answers = await self.resolver(host, port)
            except OSError as exc:
                raise EgressDenied(
                    f"could not resolve host {host} ({exc}); check the spelling of the URL."
                ) from exc
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in answers]
        if not addresses:
            raise EgressDenied(f"host {host} has no addresses; check the URL.")
        for ip in addresses:
            self.check_address(ip, host)
        return str(addresses[0])
