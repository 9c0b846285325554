"""Destination names and webhook ids: unique per URL, the same for as long as the URL is."""

from __future__ import annotations

from tests.worker.forward.signing import expected_webhook_id
from worker.forward.destination import Destination, is_destination_name
from worker.registry import NAME_PATTERN


def test_a_name_shows_the_host_and_stays_unique_per_url() -> None:
    one = Destination("https://bot.example.com/relay")
    other_path = Destination("https://bot.example.com/other")
    assert one.name.startswith("forward-bot.example.com-")
    assert one.name == Destination("https://bot.example.com/relay").name
    assert one.name != other_path.name


def test_every_name_is_a_valid_handler_name() -> None:
    urls = [
        "http://127.0.0.1:8000/relay",
        "http://[::1]:8000/relay",
        "https://" + "a" * 200 + ".example.com/",
        "https://user:pa$$@host_with_underscore.example/x?token=1",
    ]
    for url in urls:
        assert NAME_PATTERN.fullmatch(Destination(url).name), url


def test_a_webhook_id_is_one_per_event_and_destination() -> None:
    one, two = Destination("https://a.example/relay"), Destination("https://b.example/relay")
    assert one.webhook_id("1718000000000-0") == expected_webhook_id(
        "1718000000000-0", "https://a.example/relay"
    )
    assert one.webhook_id("1718000000000-0") != one.webhook_id("1718000000000-1")
    assert one.webhook_id("1718000000000-0") != two.webhook_id("1718000000000-0")


def test_destination_names_are_told_from_handler_names() -> None:
    assert is_destination_name(Destination("https://bot.example.com/relay").name)
    assert not is_destination_name("forward-to-discord")
    assert not is_destination_name("thank_voter")
