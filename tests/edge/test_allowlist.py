"""The allow-list's pure core: parsing networks and telling the client's address behind proxies."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from pydantic import ValidationError

from relay.core.networks import parse_network
from relay.core.settings import describe_errors
from relay.edge.allowlist import MAX_HOPS, AllowList, NetworkSet, client_ip
from tests.conftest import make_settings

PROXIES = NetworkSet([ip_network("10.0.0.0/8"), ip_network("fd00::/8")])


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", value.encode()) for value in values]


# -- parse_network -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("203.0.113.0/24", "203.0.113.0/24"),
        (" 198.51.100.7 ", "198.51.100.7/32"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("::1", "::1/128"),
        ("0.0.0.0/0", "0.0.0.0/0"),
    ],
)
def test_networks_and_single_addresses_parse(text: str, network: str) -> None:
    assert parse_network(text) == ip_network(network)


def test_host_bits_are_refused_with_the_likely_meaning() -> None:
    with pytest.raises(ValueError, match=r"did you mean 10\.0\.0\.0/8\?"):
        parse_network("10.0.0.1/8")


@pytest.mark.parametrize(
    "text", ["", "example.com", "10.0.0.0/33", "300.1.1.1", "10.0.0.0/8/8", "2001:db8::/129"]
)
def test_what_is_not_a_network_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="is not an IPv4 or IPv6 network"):
        parse_network(text)


# -- settings ------------------------------------------------------------------------------------


def test_settings_split_commas_and_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_settings("redis://x").allowed_sources == []
    assert make_settings("redis://x").trusted_proxies == []

    monkeypatch.setenv("RELAY_ALLOWED_SOURCES", "203.0.113.0/24, 2001:db8::/32,")
    monkeypatch.setenv("RELAY_TRUSTED_PROXIES", "10.0.0.0/8")
    settings = make_settings("redis://x")

    assert settings.allowed_sources == [ip_network("203.0.113.0/24"), ip_network("2001:db8::/32")]
    assert settings.trusted_proxies == [ip_network("10.0.0.0/8")]


def test_a_bad_cidr_stops_the_start_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TRUSTED_PROXIES", "10.0.0.0/8,10.1.0.0/33")
    with pytest.raises(ValidationError) as caught:
        make_settings("redis://x")

    message = describe_errors(caught.value)
    assert "RELAY_TRUSTED_PROXIES: '10.1.0.0/33' is not an IPv4 or IPv6 network" in message


def test_an_empty_filter_is_refused() -> None:
    with pytest.raises(ValueError, match="refuse everybody"):
        AllowList([])


# -- client_ip -----------------------------------------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() -> None:
    assert client_ip("198.51.100.7", xff("203.0.113.5"), NetworkSet([])) == ip_address("198.51.100.7")


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    assert client_ip("198.51.100.7", xff("203.0.113.5"), PROXIES) == ip_address("198.51.100.7")


def test_a_trusted_proxy_is_believed() -> None:
    assert client_ip("10.0.0.2", xff("203.0.113.5"), PROXIES) == ip_address("203.0.113.5")


def test_a_trusted_proxy_without_the_header_is_the_client() -> None:
    assert client_ip("10.0.0.2", [], PROXIES) == ip_address("10.0.0.2")


def test_the_right_most_untrusted_hop_is_the_client_and_what_it_wrote_is_ignored() -> None:
    # The client wrote "1.1.1.1" itself; 203.0.113.5 is what the first trusted proxy saw.
    headers = xff("1.1.1.1, 203.0.113.5, 10.0.0.9")
    assert client_ip("10.0.0.2", headers, PROXIES) == ip_address("203.0.113.5")


def test_repeated_headers_are_one_list_in_order() -> None:
    headers = xff("1.1.1.1", "203.0.113.5", "10.0.0.9")
    assert client_ip("10.0.0.2", headers, PROXIES) == ip_address("203.0.113.5")


def test_when_every_hop_is_trusted_the_left_most_is_the_client() -> None:
    assert client_ip("10.0.0.2", xff("10.9.9.9, 10.0.0.9"), PROXIES) == ip_address("10.9.9.9")


def test_an_unreadable_hop_makes_the_client_unknown() -> None:
    assert client_ip("10.0.0.2", xff("203.0.113.5, unknown"), PROXIES) is None
    assert client_ip("10.0.0.2", xff(""), PROXIES) is None


def test_only_the_last_hops_are_read() -> None:
    hops = ", ".join(["10.0.0.1"] * (MAX_HOPS + 5))
    assert client_ip("10.0.0.2", xff("203.0.113.5, " + hops), PROXIES) == ip_address("10.0.0.1")


@pytest.mark.parametrize(
    ("hop", "client"),
    [
        ("2001:db8::7", "2001:db8::7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("203.0.113.5:443", "203.0.113.5"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
    ],
)
def test_ipv6_ports_and_mapped_addresses(hop: str, client: str) -> None:
    assert client_ip("fd00::1", xff(hop), PROXIES) == ip_address(client)


def test_an_ipv4_peer_on_a_dual_stack_socket_is_seen_as_ipv4() -> None:
    assert client_ip("::ffff:10.0.0.2", xff("203.0.113.5"), PROXIES) == ip_address("203.0.113.5")


def test_no_peer_is_no_client() -> None:
    assert client_ip(None, xff("203.0.113.5"), PROXIES) is None


# -- AllowList --------------------------------------------------------------------------------


def test_the_filter_allows_only_listed_networks() -> None:
    allow_list = AllowList([ip_network("203.0.113.0/24"), ip_network("2001:db8::/32")], PROXIES.networks)

    def allowed(peer: str, *forwarded: str) -> bool:
        scope = {"client": (peer, 1234), "headers": xff(*forwarded)}
        by_client = allow_list.allows(allow_list.client(scope))
        verdict = allow_list.verdict(scope)
        assert verdict == allow_list.verdict(scope) == (by_client, allow_list.client(scope))  # cached alike
        return by_client

    assert allowed("203.0.113.200")
    assert allowed("2001:db8::1")
    assert not allowed("198.51.100.7")
    assert not allowed("198.51.100.7", "203.0.113.5")  # untrusted peer: its header is ignored
    assert allowed("10.0.0.2", "203.0.113.5")
    assert not allowed("10.0.0.2", "203.0.113.5, 198.51.100.7")  # spoofed left hop, real client right
    assert not allowed("10.0.0.2")  # the proxy itself is not an allowed source
    assert not allow_list.allows(allow_list.client({"client": None, "headers": []}))


def test_a_network_set_matches_its_edges_and_nothing_past_them() -> None:
    networks = NetworkSet([ip_network("203.0.113.0/24"), ip_network("2001:db8::/32")])

    assert ip_address("203.0.113.0") in networks
    assert ip_address("203.0.113.255") in networks
    assert ip_address("203.0.114.0") not in networks
    assert ip_address("203.0.112.255") not in networks
    assert ip_address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff") in networks
    assert ip_address("2001:db9::") not in networks
    assert ip_address("::ffff:203.0.113.1") not in networks  # an IPv6 address is never in an IPv4 network
    assert not NetworkSet([])


def test_remembered_verdicts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("relay.edge.allowlist.VERDICTS_KEPT", 8)
    allow_list = AllowList([ip_network("203.0.113.0/24")])

    for n in range(20):
        assert allow_list.verdict({"client": (f"198.51.100.{n}", 1), "headers": []}) == (
            False,
            ip_address(f"198.51.100.{n}"),
        )

    assert len(allow_list._verdicts) <= 8
