"""IP allow-lists and trusted proxies.

The source address of a request is the TCP peer, unless that peer is a trusted
proxy: then ``X-Forwarded-For`` is walked from the right, skipping trusted hops,
and the first untrusted address is the client. Headers from anyone else are ignored,
so a client cannot talk its way past the allow-list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def _normalise(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:1.2.3.4``) is the IPv4 address it maps."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in_any(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


class NetworkACL:
    """Decides where a request comes from and whether that network may use the gateway."""

    def __init__(self, allow: Iterable[IPNetwork], trusted_proxies: Iterable[IPNetwork] = ()) -> None:
        self.allow = tuple(allow)
        self.trusted_proxies = tuple(trusted_proxies)

    def client_address(self, peer: str | None, headers: Mapping[str, str]) -> IPAddress | None:
        """The client's address, or None when the peer address is unknown or unparsable."""
        try:
            address = _normalise(ip_address((peer or "").split("%", 1)[0]))
        except ValueError:
            return None
        if not _in_any(address, self.trusted_proxies):
            return address
        forwarded = headers.get("X-Forwarded-For", "")
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            try:
                hop_address = _normalise(ip_address(hop))
            except ValueError:
                return None  # a garbled chain from a trusted proxy: trust nothing
            if not _in_any(hop_address, self.trusted_proxies):
                return hop_address
            address = hop_address
        return address

    def is_allowed(self, address: IPAddress | None) -> bool:
        return address is not None and _in_any(address, self.allow)
