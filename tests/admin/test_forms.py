"""relay.admin.forms: every parameter checked, every refusal with its reason."""

from __future__ import annotations

import pytest

from relay.admin.forms import BadInput, DeadFilter, Search, parse_dead_filter, parse_search


def test_an_empty_search_asks_nothing() -> None:
    assert parse_search({}) is None
    assert parse_search({"user_id": "  ", "entry_id": ""}) is None


def test_a_search_keeps_what_it_was_given() -> None:
    found = parse_search({"user_id": " 123456789012345678 ", "guild_id": "9"})
    assert found == Search(user_id="123456789012345678", guild_id="9")
    assert parse_search({"entry_id": "1718000000000-12"}) == Search(entry_id="1718000000000-12")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"entry_id": "1718000000001"}, "entry_id must be an event id"),
        ({"entry_id": "a-1"}, "entry_id must be an event id"),
        ({"user_id": "12a"}, "user_id must be a Discord user id"),
        ({"user_id": "1" * 21}, "user_id must be a Discord user id"),
        ({"guild_id": "<b>"}, "guild_id must be a Discord server id"),
    ],
)
def test_a_malformed_search_says_which_field_and_why(params: dict[str, str], reason: str) -> None:
    with pytest.raises(BadInput, match=reason) as caught:
        parse_search(params)
    assert all(value not in str(caught.value) for value in params.values())


def test_dead_filter_reads_names_and_durations() -> None:
    flt = parse_dead_filter(
        {"handler": "reward_voter", "error_type": "httpx.ConnectError", "older_than": "1h30m"}
    )
    assert (flt.handler, flt.error_type, flt.older_than_s) == ("reward_voter", "httpx.ConnectError", 5400.0)
    assert flt.query() == {
        "handler": "reward_voter",
        "error_type": "httpx.ConnectError",
        "older_than": "1h30m",
    }
    assert parse_dead_filter({}) == DeadFilter()
    assert DeadFilter().describe() == "all dead letters"


@pytest.mark.parametrize(
    "params",
    [
        {"handler": "no spaces"},
        {"error_type": "<script>"},
        {"older_than": "soon"},
        {"newer_than": "9" * 50},
        {"upto": "x"},
    ],
)
def test_a_bad_filter_is_refused(params: dict[str, str]) -> None:
    with pytest.raises(BadInput):
        parse_dead_filter(params)
