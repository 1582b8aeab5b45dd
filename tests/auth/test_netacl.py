"""Where a request comes from: the peer, or the right-most untrusted hop a trusted proxy reports."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from multidict import CIMultiDict

from auth.netacl import NetworkACL, ProxyHeader, forwarded_for, parse_node

PROXY = "10.0.0.2"
acl = NetworkACL([ip_network("192.0.2.0/24"), ip_network("2001:db8::/32")], [ip_network("10.0.0.0/24")])
forwarded_acl = NetworkACL(acl.allow, acl.trusted_proxies, ProxyHeader.FORWARDED)


def headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


def test_an_untrusted_peers_headers_are_ignored() -> None:
    spoofed = headers(("X-Forwarded-For", "192.0.2.1"), ("Forwarded", "for=192.0.2.1"))
    assert acl.client_address("198.51.100.9", spoofed) == ip_address("198.51.100.9")
    assert not acl.is_allowed(acl.client_address("198.51.100.9", spoofed))
    assert forwarded_acl.client_address("198.51.100.9", spoofed) == ip_address("198.51.100.9")


def test_the_right_most_untrusted_hop_is_the_client() -> None:
    # The client made up "192.0.2.66"; the proxy appended the address it saw.
    chain = headers(("X-Forwarded-For", "192.0.2.66, 198.51.100.9"))
    assert acl.client_address(PROXY, chain) == ip_address("198.51.100.9")
    chained_proxies = headers(("X-Forwarded-For", "192.0.2.66, 198.51.100.9, 10.0.0.7"))
    assert acl.client_address(PROXY, chained_proxies) == ip_address("198.51.100.9")


def test_every_header_line_counts_in_order() -> None:
    # A proxy that adds a line of its own, after the one the client sent.
    lines = headers(("X-Forwarded-For", "192.0.2.66"), ("X-Forwarded-For", "198.51.100.9"))
    assert acl.client_address(PROXY, lines) == ip_address("198.51.100.9")


def test_a_garbled_hop_from_a_trusted_proxy_gives_no_address() -> None:
    assert acl.client_address(PROXY, headers(("X-Forwarded-For", "192.0.2.1, not-an-ip"))) is None
    assert not acl.is_allowed(None)
    # What lies left of the client's address is never read.
    assert acl.client_address(PROXY, headers(("X-Forwarded-For", "garbage, 192.0.2.1"))) == ip_address("192.0.2.1")


def test_the_proxy_itself_without_a_header_is_the_client() -> None:
    assert acl.client_address(PROXY, headers()) == ip_address(PROXY)


def test_only_the_configured_header_is_believed() -> None:
    both = headers(("X-Forwarded-For", "192.0.2.1"), ("Forwarded", "for=198.51.100.9"))
    assert acl.client_address(PROXY, both) == ip_address("192.0.2.1")
    assert forwarded_acl.client_address(PROXY, both) == ip_address("198.51.100.9")


def test_forwarded_elements_quotes_ports_and_ipv6() -> None:
    value = 'for=192.0.2.66;proto=https, For="[2001:db8:cafe::17]:4711";by=10.0.0.2, for="198.51.100.9:6000"'
    assert forwarded_for(value) == ["192.0.2.66", "[2001:db8:cafe::17]:4711", "198.51.100.9:6000"]
    assert forwarded_acl.client_address(PROXY, headers(("Forwarded", value))) == ip_address("198.51.100.9")
    ipv6 = headers(("Forwarded", 'for="[2001:db8:cafe::17]:4711"'))
    assert forwarded_acl.client_address(PROXY, ipv6) == ip_address("2001:db8:cafe::17")
    assert forwarded_acl.is_allowed(forwarded_acl.client_address(PROXY, ipv6))


@pytest.mark.parametrize("value", ["for=unknown", "for=_hidden", "proto=https", 'for="[::1"', "for=1.2.3.4:x"])
def test_forwarded_nodes_without_an_address_give_none(value: str) -> None:
    assert forwarded_acl.client_address(PROXY, headers(("Forwarded", value))) is None


@pytest.mark.parametrize(("text", "address"), [
    ("192.0.2.1", "192.0.2.1"), ("192.0.2.1:443", "192.0.2.1"), ("2001:db8::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"), ("[2001:db8::1]:443", "2001:db8::1"), ("::ffff:192.0.2.1", "192.0.2.1"),
])
def test_node_spellings(text: str, address: str) -> None:
    assert parse_node(text) == ip_address(address)


def test_ipv6_peers_and_mapped_ipv4() -> None:
    assert acl.client_address("2001:db8::5", headers()) == ip_address("2001:db8::5")
    assert acl.is_allowed(ip_address("2001:db8::5")) and not acl.is_allowed(ip_address("2001:db9::5"))
    assert acl.client_address("::ffff:192.0.2.1", headers()) == ip_address("192.0.2.1")
    assert acl.client_address("fe80::1%eth0", headers()) == ip_address("fe80::1")
    assert acl.client_address(None, headers()) is None
