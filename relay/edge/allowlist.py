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

Pure (no I/O): `AllowList` for the edge's dispatcher, `client_ip` for what it decides on; the
settings read networks with `relay.core.networks.parse_network`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from relay.core.networks import Address, Network, parse_ip

FORWARDED_FOR = b"x-forwarded-for"
MAX_HOPS = 20
"""``X-Forwarded-For`` hops read at most, from the right: no real chain of proxies is longer."""
VERDICTS_KEPT = 4096
"""Distinct (peer, ``X-Forwarded-For``) verdicts a `AllowList` remembers."""


class NetworkSet:
    """Networks, matched as integer ranges: ``address in network`` costs microseconds each."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)
        self._ranges: dict[int, tuple[tuple[int, int], ...]] = {
            version: tuple(
                (int(n.network_address), int(n.broadcast_address))
                for n in self.networks
                if n.version == version
            )
            for version in (4, 6)
        }

    def __contains__(self, address: Address) -> bool:
        number = int(address)
        for low, high in self._ranges[address.version]:
            if low <= number <= high:
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.networks)


def client_ip(
    peer: str | None, headers: Iterable[tuple[bytes, bytes]], trusted_proxies: NetworkSet
) -> Address | None:
    """The client's address: the peer's, or behind trusted proxies the one they were sent from.

    None when it cannot be told (no peer, as on a Unix socket, or an unreadable hop): such a
    request is refused by an allow-list.
    """
    if peer is None:
        return None
    address = parse_ip(peer)
    if address is None or not trusted_proxies or address not in trusted_proxies:
        return address
    forwarded = [value for name, value in headers if name == FORWARDED_FOR]
    if not forwarded:
        return address
    # Repeated headers form one list, in order (RFC 9110, section 5.3).
    hops = b",".join(forwarded).decode("latin-1").split(",")
    for hop in reversed(hops[-MAX_HOPS:]):
        address = parse_ip(hop)
        if address is None or address not in trusted_proxies:
            return address
    return address  # every hop is a trusted proxy: the left-most one sent it


class AllowList:
    """Decides whether a request's client is within `allowed`, believing `trusted_proxies`."""

    def __init__(self, allowed: Sequence[Network], trusted_proxies: Sequence[Network] = ()) -> None:
        if not allowed:
            raise ValueError("an empty allow-list would refuse everybody; leave the filter off instead")
        self.allowed = NetworkSet(allowed)
        self.trusted_proxies = NetworkSet(trusted_proxies)
        # Verdicts by (peer, X-Forwarded-For): `ipaddress` takes microseconds per step, and a
        # webhook sender posts from a handful of addresses. Emptied when full, so a flood of
        # made-up addresses costs only the work it would have cost uncached.
        self._verdicts: dict[tuple[str | None, bytes], tuple[bool, Address | None]] = {}

    def client(self, scope: Mapping[str, Any]) -> Address | None:
        """The client address of an ASGI HTTP `scope` (see `client_ip`)."""
        return client_ip(_peer(scope), scope.get("headers", ()), self.trusted_proxies)

    def allows(self, address: Address | None) -> bool:
        """True when `address` is known and within the allow-list."""
        return address is not None and address in self.allowed

    def verdict(self, scope: Mapping[str, Any]) -> tuple[bool, Address | None]:
        """``(allowed, client address)`` for an ASGI HTTP `scope`; what the edge calls per request."""
        peer = _peer(scope)
        forwarded = b""
        if self.trusted_proxies:  # without trusted proxies the header is never read
            forwarded = b",".join(
                [value for name, value in scope.get("headers", ()) if name == FORWARDED_FOR]
            )
        key = (peer, forwarded)
        verdict = self._verdicts.get(key)
        if verdict is None:
            address = client_ip(peer, [(FORWARDED_FOR, forwarded)] if forwarded else [], self.trusted_proxies)
            verdict = (self.allows(address), address)
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict


def _peer(scope: Mapping[str, Any]) -> str | None:
    client = scope.get("client")
    host = client[0] if isinstance(client, list | tuple) and client else None
    return host if isinstance(host, str) else None
