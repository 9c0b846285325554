"""examples/discord.py through the real pipeline, against a local server that answers as Discord does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from examples import discord as example
from relay.core.settings import Settings
from tests.support.fake_discord import BOT_TOKEN, FakeDiscord, fake_discord
from tests.worker.helpers import (
    dead_letters,
    handle_with,
    registry_of,
    review_body,
    vote_body,
)
from worker import Registry
from worker.checks import check_registry

pytestmark = pytest.mark.anyio
ROLE_ID = "987654321098765432"


def handlers() -> Registry:
    return registry_of(example)


@pytest.fixture
def discord(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    with fake_discord() as fake:
        monkeypatch.setenv("DISCORD_WEBHOOK_URL", fake.webhook_url)
        monkeypatch.setenv("DISCORD_API_URL", fake.api_url)
        monkeypatch.setenv("DISCORD_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("DISCORD_VOTER_ROLE_ID", ROLE_ID)
        monkeypatch.setenv("DISCORD_VOTER_ROLE_HOURS", str(0.3 / 3600))  # 0.3 s instead of 12 h
        yield fake


async def handle(redis: Redis, settings: Settings, *bodies: bytes) -> list[str]:
    return await handle_with(redis, settings, example, *bodies)


def test_the_example_passes_the_start_up_checks() -> None:
    assert check_registry(handlers()) == []
    assert [h.name for h in handlers().for_type("VOTE_ADD")] == [
        "thank-voter",
        "voter-role",
    ]  # not the removal


async def test_a_voter_gets_the_role_through_a_rate_limit_and_loses_it_later(
    redis: Redis, settings: Settings, discord: FakeDiscord
) -> None:
    discord.rate_limit_first = {"role"}
    body = vote_body(guild_id="111111111111111111")
    await handle(redis, settings, body)

    user = body.split(b'"user_id":"')[1].split(b'"')[0].decode()
    role_path = f"/api/v10/guilds/111111111111111111/members/{user}/roles/{ROLE_ID}"
    assert [(c.method, c.path, c.status) for c in discord.answered("role")] == [
        ("PUT", role_path, 429),  # Discord asked to wait: retried after retry_after, not dead-lettered
        ("PUT", role_path, 204),
        ("DELETE", role_path, 204),  # the deferred job, hours later in production
    ]
    assert discord.answered("role")[1].headers["X-Audit-Log-Reason"] == "voted on Sphere"
    [thanks] = discord.answered("webhook")  # the role's retry did not post the thanks again
    assert thanks.body is not None and f"<@{user}>" in thanks.body["content"]
    assert await dead_letters(redis) == []


async def test_a_rate_limited_post_is_retried_and_posted_once(
    redis: Redis, settings: Settings, discord: FakeDiscord
) -> None:
    discord.rate_limit_first = {"webhook"}
    await handle(redis, settings, vote_body())
    assert [c.status for c in discord.answered("webhook")] == [429, 204]
    assert await dead_letters(redis) == []


async def test_a_review_is_posted_as_an_embed_with_its_stars(
    redis: Redis, settings: Settings, discord: FakeDiscord
) -> None:
    await handle(redis, settings, review_body(stars=4))

    [post] = discord.answered("webhook", 204)
    assert post.body is not None
    [embed] = post.body["embeds"]
    assert (embed["title"], embed["description"]) == ("Great server", "Friendly people")
    assert {"name": "Stars", "value": "★★★★☆", "inline": True} in embed["fields"]
    assert embed["timestamp"].startswith("2024-06-10T")  # published_timestamp 1718000000000
    assert post.body["allowed_mentions"] == {"parse": []}  # a review's text pings nobody
    assert discord.answered("role") == []


async def test_a_bot_token_discord_refuses_is_dead_lettered_at_once(
    redis: Redis, settings: Settings, discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "not-the-bot-token-k7Qm2vX9pL4rT8wZ")
    await handle(redis, settings, vote_body())

    assert [c.status for c in discord.answered("role")] == [401]
    [letter] = await dead_letters(redis)
    assert (letter.handler, letter.error_type, letter.attempts) == ("voter-role", "Permanent", 1)
    assert "HTTP 401" in letter.error


async def test_without_settings_nothing_is_called(
    redis: Redis, settings: Settings, discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DISCORD_WEBHOOK_URL", "DISCORD_BOT_TOKEN", "DISCORD_VOTER_ROLE_ID"):
        monkeypatch.delenv(name)
    await handle(redis, settings, vote_body(), review_body())
    assert discord.calls == []
    assert await dead_letters(redis) == []


def test_a_bad_role_duration_stops_start_up_with_one_line() -> None:
    with pytest.raises(SystemExit, match="DISCORD_VOTER_ROLE_HOURS must be a number"):
        example.DiscordSettings.from_env({"DISCORD_VOTER_ROLE_HOURS": "twelve"})
