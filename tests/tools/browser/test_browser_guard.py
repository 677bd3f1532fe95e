"""The egress guard: every non-public address class is refused, before any connection."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from tools.browser.guard import EgressDenied, EgressGuard, forbidden_reason

FORBIDDEN = {
    "0.0.0.0": "unspecified",
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",
    "100.64.0.1": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT",
    "224.0.0.251": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",  # broadcast
    "192.0.2.10": "private",  # TEST-NET documentation range
    "198.18.0.1": "private",  # benchmarking range
    "::": "unspecified",
    "::1": "loopback",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "ff02::1": "multicast",
    "fec0::1": "site-local",
    "2001:db8::1": "private",  # documentation
    "::ffff:127.0.0.1": "loopback",
    "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "link-local",
    "2002:a00:1::": "private",  # 6to4 of 10.0.0.1
    "64:ff9b::a9fe:a9fe": "link-local",  # NAT64 of 169.254.169.254
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN.items())
def test_every_non_public_class_is_forbidden(address, reason):
    found = forbidden_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_allow_list_opens_only_what_it_names():
    guard = EgressGuard(allow_hosts=["intranet.example"], allow_networks=["10.1.0.0/16"])
    guard.check_address(ipaddress.ip_address("10.1.2.3"))
    guard.check_address(ipaddress.ip_address("192.168.0.1"), host="intranet.example")
    with pytest.raises(EgressDenied, match="private"):
        guard.check_address(ipaddress.ip_address("10.2.0.1"))
    with pytest.raises(EgressDenied, match="allow_networks"):
        guard.check_address(ipaddress.ip_address("192.168.0.1"), host="other.example")


def resolve(guard: EgressGuard, url_scheme: str, host: str, port: int = 80) -> str:
    return asyncio.run(guard.resolve(url_scheme, host, port))


def test_schemes_other_than_http_are_refused(make_resolver):
    guard = EgressGuard(resolver=make_resolver())
    for scheme in ("file", "ftp", "gopher", "javascript", ""):
        with pytest.raises(EgressDenied, match="only http and https"):
            resolve(guard, scheme, "example.com")


def test_names_are_judged_by_every_address_they_resolve_to(make_resolver):
    dns = make_resolver({"mixed.test": ["8.8.8.8", "10.0.0.1"], "pub.test": ["8.8.4.4"]})
    guard = EgressGuard(resolver=dns)
    assert resolve(guard, "https", "pub.test", 443) == "8.8.4.4"
    with pytest.raises(EgressDenied, match=r"mixed\.test \(10\.0\.0\.1\).*private"):
        resolve(guard, "http", "mixed.test")
    with pytest.raises(EgressDenied, match="private"):
        resolve(guard, "http", "internal.test")
    with pytest.raises(EgressDenied, match="could not resolve"):
        resolve(guard, "http", "nowhere.test")


def test_literal_addresses_are_checked_without_dns():
    asked: list[str] = []

    async def spy(host: str, port: int) -> list[str]:
        asked.append(host)
        return []

    guard = EgressGuard(resolver=spy)
    for host in ("169.254.169.254", "::1", "::ffff:192.168.0.1", "100.64.1.1"):
        with pytest.raises(EgressDenied):
            resolve(guard, "http", host)
    assert asked == []


def test_localhost_through_the_system_resolver_is_refused():
    with pytest.raises(EgressDenied, match="loopback"):
        resolve(EgressGuard(), "http", "localhost")
