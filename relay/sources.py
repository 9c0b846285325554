"""Which peers may post webhooks: an optional allow-list of networks (``RELAY_ALLOWED_SOURCES``).

Off by default: the signature is what keeps forged events out, and it holds whoever sends them. The
allow-list adds a second gate in front of it, for a deployment that knows the addresses Sphere posts
from: a request to ``/webhook`` from anywhere else is answered 403 before its body is read.

Behind reverse proxies the peer is the proxy, so the client's address is taken from
``X-Forwarded-For``, but only when the peer is one of ``RELAY_TRUSTED_PROXIES``: anybody can write
that header, so it is believed only as far as trusted hands passed it on. The header lists one
address per hop, each proxy appending the address it received from; reading from the right, the
first address that is not a trusted proxy is the client. Everything left of it was written by the
client itself and is ignored. If every hop is a trusted proxy, the left-most one is the client.
The RFC 7239 ``Forwarded`` header is not read.

Pure (no I/O, the `ipaddress` module only): `parse_network` for settings, `SourceFilter` for the
edge's dispatcher, `client_ip` for what it decides on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

FORWARDED_FOR = b"x-forwarded-for"
MAX_HOPS = 20
"""``X-Forwarded-For`` hops read at most, from the right: no real chain of proxies is longer."""


def parse_network(text: str) -> Network:
    """``203.0.113.0/24``, ``2001:db8::/32`` or a single address, as a network; else `ValueError`.

    Host bits must be zero (``10.0.0.1/8`` is refused rather than silently read as ``10.0.0.0/8``:
    it is more likely a typo than a wish to allow the whole network).
    """
    value = text.strip()
    try:
        return ip_network(value)
    except ValueError:
        pass
    try:
        network = ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IPv4 or IPv6 network; write a CIDR such as 203.0.113.0/24 or "
            "2001:db8::/32, or a single address"
        ) from None
    raise ValueError(f"{value!r} has host bits set; did you mean {network}?")


@lru_cache(maxsize=4096)
def _parse_ip(text: str) -> Address | None:
    # Cached: a webhook sender posts from a handful of addresses; the bound keeps a flood of
    # made-up ones from growing it.
    value = text.strip()
    if value.startswith("["):  # "[2001:db8::1]" or "[2001:db8::1]:443"
        value = value[1 : value.find("]")] if "]" in value else value
    elif value.count(":") == 1:  # "203.0.113.5:443": some proxies append the port
        value = value.partition(":")[0]
    try:
        address = ip_address(value)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d
    return address


def _within(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def client_ip(
    peer: str | None, headers: Iterable[tuple[bytes, bytes]], trusted_proxies: Sequence[Network]
) -> Address | None:
    """The client's address: the peer's, or behind trusted proxies the one they were sent from.

    None when it cannot be told (no peer, as on a Unix socket, or an unreadable hop): such a
    request is refused by an allow-list.
    """
    if peer is None:
        return None
    address = _parse_ip(peer)
    if address is None or not trusted_proxies or not _within(address, trusted_proxies):
        return address
    forwarded = [value for name, value in headers if name == FORWARDED_FOR]
    if not forwarded:
        return address
    # Repeated headers form one list, in order (RFC 9110, section 5.3).
    hops = b",".join(forwarded).decode("latin-1").split(",")
    for hop in reversed(hops[-MAX_HOPS:]):
        address = _parse_ip(hop)
        if address is None or not _within(address, trusted_proxies):
            return address
    return address  # every hop is a trusted proxy: the left-most one sent it


class SourceFilter:
    """Decides whether a request's client is within `allowed`, believing `trusted_proxies`."""

    def __init__(self, allowed: Sequence[Network], trusted_proxies: Sequence[Network] = ()) -> None:
        if not allowed:
            raise ValueError("an empty allow-list would refuse everybody; leave the filter off instead")
        self.allowed = tuple(allowed)
        self.trusted_proxies = tuple(trusted_proxies)

    def client(self, scope: Mapping[str, Any]) -> Address | None:
        """The client address of an ASGI HTTP `scope` (see `client_ip`)."""
        peer = scope.get("client")
        host = peer[0] if isinstance(peer, list | tuple) and peer else None
        return client_ip(
            host if isinstance(host, str) else None, scope.get("headers", ()), self.trusted_proxies
        )

    def allows(self, address: Address | None) -> bool:
        """True when `address` is known and within the allow-list."""
        return address is not None and _within(address, self.allowed)
