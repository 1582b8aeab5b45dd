"""IP allow-lists and trusted proxies.

The source address of a request is the TCP peer, unless that peer is a trusted proxy.
Then the configured proxy header — ``X-Forwarded-For`` or RFC 7239 ``Forwarded``, never
both: a proxy that appends to one passes the other through from the client untouched —
is walked from the right, skipping trusted hops, and the first untrusted address is the
client. Every line of the header counts, in order (some proxies add a line rather than
extend the last). Hops to the left of that address are the client's own words and are
never read. A hop that cannot be read (``unknown``, an obfuscated name, garbage) where
an address is needed gives no address at all, which the allow-list refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Protocol

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class ProxyHeader(StrEnum):
    """The header a trusted proxy writes the client's address into."""

    X_FORWARDED_FOR = "X-Forwarded-For"
    FORWARDED = "Forwarded"


class Headers(Protocol):
    """What the ACL needs of a request's headers (aiohttp's ``CIMultiDictProxy`` has it)."""

    def getall(self, key: str, default: list[str], /) -> list[str]: ...


def _normalise(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:1.2.3.4``) is the IPv4 address it maps."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in_any(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def parse_node(text: str) -> IPAddress | None:
    """An address from ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]`` or ``[::1]:443``; else None."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
    elif text.count(":") == 1:  # IPv4 with a port; IPv6 has at least two colons
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
    else:
        host = text
    try:
        return _normalise(ip_address(host))
    except ValueError:
        return None


def _split_outside_quotes(text: str, separator: str) -> Iterator[str]:
    part: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            yield "".join(part)
            part = []
            continue
        part.append(char)
    yield "".join(part)


def forwarded_for(value: str) -> list[str]:
    """The ``for=`` node of each element of an RFC 7239 ``Forwarded`` value, in order ("" where absent)."""
    nodes = []
    for element in _split_outside_quotes(value, ","):
        node = ""
        for pair in _split_outside_quotes(element, ";"):
            name, equals, token = pair.strip().partition("=")
            if equals and name.strip().lower() == "for":
                token = token.strip()
                if len(token) >= 2 and token[0] == token[-1] == '"':
                    token = token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                node = token
        nodes.append(node)
    return nodes


class NetworkACL:
    """Decides where a request comes from and whether that network may use the gateway."""

    def __init__(self, allow: Iterable[IPNetwork], trusted_proxies: Iterable[IPNetwork] = (),
                 proxy_header: ProxyHeader = ProxyHeader.X_FORWARDED_FOR) -> None:
        self.allow = tuple(allow)
        self.trusted_proxies = tuple(trusted_proxies)
        self.proxy_header = proxy_header

    def client_address(self, peer: str | None, headers: Headers) -> IPAddress | None:
        """The client's address, or None when it cannot be known (unparsable peer or forwarded hop)."""
        try:
            address = _normalise(ip_address((peer or "").split("%", 1)[0]))
        except ValueError:
            return None
        if not _in_any(address, self.trusted_proxies):
            return address
        for hop in reversed(self._hops(headers)):
            hop_address = parse_node(hop)
            if hop_address is None:
                return None  # a hop we cannot read, from a proxy we trust: trust nothing
            if not _in_any(hop_address, self.trusted_proxies):
                return hop_address
            address = hop_address
        return address

    def _hops(self, headers: Headers) -> list[str]:
        lines = headers.getall(self.proxy_header.value, [])
        if self.proxy_header is ProxyHeader.FORWARDED:
            return [node for line in lines for node in forwarded_for(line)]
        return [hop.strip() for line in lines for hop in line.split(",") if hop.strip()]

    def is_allowed(self, address: IPAddress | None) -> bool:
        return address is not None and _in_any(address, self.allow)


def is_ip_address(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address (not a host name)."""
    try:
        ip_address(text)
    except ValueError:
        return False
    return True
