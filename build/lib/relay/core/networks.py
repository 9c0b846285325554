"""IP networks in settings: `parse_network` reads one CIDR or address, strictly (host bits zero).

Pure; shared by the settings (``RELAY_ALLOWED_SOURCES``, ``RELAY_TRUSTED_PROXIES``) and the edge's
source filter.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


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
def parse_ip(text: str) -> Address | None:
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
