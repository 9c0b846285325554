"""The `relay` command's pure parts: the bodies `relay send` signs, and every command's help."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from relay.cli import cli
from relay.cli.send import compact, review_body, snowflakes, vote_body
from relay.core.events import ReviewAdd, VoteAdd, parse

NOW = 1718000000000  # 2024-06-10T06:13:20Z


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
