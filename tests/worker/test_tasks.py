"""The shipped example tasks, run through the real pipeline against a local fake Discord."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from relay.core.events import ReviewAdd, parse
from relay.core.settings import Settings
from tests.support.fake_discord import FakeDiscord, fake_discord
from tests.worker.helpers import (
    dead_letters,
    handle_with,
    registry_of,
    review_body,
    vote_body,
)
from worker import Registry, tasks
from worker.checks import check_registry

pytestmark = pytest.mark.anyio


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    with fake_discord() as fake:
        yield fake


def shipped() -> Registry:
    return registry_of(tasks)


async def handle(redis: Redis, settings: Settings, *bodies: bytes) -> list[str]:
    return await handle_with(redis, settings, tasks, *bodies)


def test_the_examples_are_registered_and_pass_the_start_up_checks() -> None:
    assert [h.name for h in shipped().for_type("VOTE_ADD")] == ["thank_voter"]
    assert [h.name for h in shipped().for_type("REVIEW_ADD")] == ["log_review"]
    assert check_registry(shipped()) == []


async def test_a_voter_is_thanked_once_through_a_rate_limit(
    redis: Redis, settings: Settings, discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tasks.DISCORD_WEBHOOK_URL, discord.webhook_url)
    discord.rate_limit_first = {"webhook"}
    body = vote_body()
    await handle(redis, settings, body)

    assert [c.status for c in discord.answered("webhook")] == [429, 204]  # retried when Discord said
    [message] = {str(c.body) for c in discord.answered("webhook")}  # the same message both times
    user = parse(body).model_dump()["user_id"]
    assert f"<@{user}>" in message and "'allowed_mentions': {'users': ['" + user + "']}" in message
    assert await dead_letters(redis) == []


async def test_without_a_webhook_url_nothing_is_posted(
    redis: Redis, settings: Settings, discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tasks.DISCORD_WEBHOOK_URL, raising=False)
    await handle(redis, settings, vote_body())
    assert discord.calls == []


async def test_a_refused_webhook_is_dead_lettered_at_once(
    redis: Redis, settings: Settings, discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tasks.DISCORD_WEBHOOK_URL, discord.webhook_url)
    discord.status = {"webhook": 404}  # the webhook was deleted: retrying cannot help
    await handle(redis, settings, vote_body())

    assert len(discord.calls) == 1
    [letter] = await dead_letters(redis)
    assert (letter.handler, letter.error_type, letter.attempts) == ("thank_voter", "Permanent", 1)
    assert "HTTP 404" in letter.error


async def test_a_review_is_logged_without_its_text(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    body = review_body(stars=4)
    assert isinstance(parse(body), ReviewAdd)
    with caplog.at_level(logging.INFO, logger="worker.tasks"):
        await handle(redis, settings, body)

    [line] = [
        r.getMessage() for r in caplog.records if r.name == "worker.tasks" and "review" in r.getMessage()
    ]
    assert "4-star review" in line and "Great server" in line
    assert "Friendly people" not in line
