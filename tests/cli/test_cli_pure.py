"""The `relay` command's pure parts: times, durations, pacing, and the bodies `relay send` signs."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from relay.cli import cli
from relay.cli.common import Pacer
from relay.cli.send import compact, review_body, snowflakes, vote_body
from relay.cli.timespec import ago, bound_ms, iso, parse_duration, parse_time, span
from relay.core.events import ReviewAdd, VoteAdd, parse

NOW = 1718000000000  # 2024-06-10T06:13:20Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1h30m", 5400),
        ("0.5s", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "7d garbage", "-1h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_times_ago_iso_now_and_entry_ids() -> None:
    assert parse_time("2h", NOW) == str(NOW - 7_200_000)
    assert parse_time("now", NOW) == str(NOW)
    assert parse_time("1718000000000-7", NOW) == "1718000000000-7"
    assert parse_time("2024-06-10T06:13:20", NOW) == str(NOW)  # naive means UTC
    assert parse_time("2024-06-10T08:13:20+02:00", NOW) == str(NOW)
    assert parse_time("2024-06-10T06:13:20Z", NOW) == str(NOW)
    assert bound_ms(parse_time("1718000000000-7", NOW)) == NOW
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday", NOW)


def test_times_print_in_utc_and_spans_stay_short() -> None:
    assert iso(NOW + 5) == "2024-06-10T06:13:20.005Z"
    assert [span(ms) for ms in (850, 2100, 185_000, 7_380_000, 273_600_000)] == [
        "850ms",
        "2.1s",
        "3m05s",
        "2h03m",
        "3d04h",
    ]
    assert ago(NOW - 2100, NOW) == "2.1s ago"


class FakeTime:
    """A clock and a sleep that only move time forward, so pacing is checked without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.anyio
async def test_the_pacer_spaces_batches_to_the_rate() -> None:
    time = FakeTime()
    pacer = Pacer(10.0, clock=time.clock, sleep=time.sleep)
    assert pacer.batch == 1
    for _ in range(3):
        await pacer.wait(5)  # five items at 10/s: the next batch may go half a second later
    assert time.slept == [0.5, 0.5]

    time.now += 60  # idle for a minute: no credit piles up beyond the next batch's turn
    await pacer.wait(5)
    assert time.slept == [0.5, 0.5]


@pytest.mark.anyio
async def test_rate_zero_means_no_limit() -> None:
    time = FakeTime()
    pacer = Pacer(0, clock=time.clock, sleep=time.sleep)
    for _ in range(100):
        await pacer.wait(100)
    assert time.slept == [] and pacer.batch == 100


def test_bodies_are_compact_json_that_validates() -> None:
    vote = vote_body("338202622731485185", "258317078560243712")
    assert vote == b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"258317078560243712"}'
    assert isinstance(parse(vote), VoteAdd)

    review = review_body("1", "2", "3", 4, "Привет 👋", "ok", NOW)
    assert b", " not in review and b": " not in review  # no spaces after separators
    assert "Привет 👋".encode() in review  # non-ASCII as is, as JSON.stringify sends it
    event = parse(review)
    assert isinstance(event, ReviewAdd)
    assert (event.review.id, event.review.stars, event.review.published_timestamp) == ("3", 4, NOW)
    assert compact(json.loads(review)) == review


def test_snowflakes_are_distinct_digit_strings() -> None:
    ids = snowflakes(NOW)
    batch = [next(ids) for _ in range(10_000)]
    assert len(set(batch)) == len(batch)
    assert all(value.isdigit() and len(value) <= 20 for value in batch)


def _commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, [*prefix, name])
        else:
            found.append([*prefix, name])
    return found


@pytest.mark.parametrize("command", _commands(cli, []), ids=lambda c: " ".join(c) or "relay")
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])

    assert result.exit_code == 0
    assert "Example" in result.output
    assert "relay " + " ".join(command) in result.output.split("Example", 1)[1]
