"""examples/voters.py through the real pipeline: votes posted to a real edge by Sphere, top.gg and a
Standard Webhooks sender, handled by burst workers, thanks and reminders posted to a local server
that answers as Discord does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from examples import voters as example
from relay.core.events import Vote, VoteAdd
from relay.core.settings import Settings
from tests.conftest import make_settings
from tests.edge.test_webhook import signed
from tests.support.edge_server import deliver
from tests.support.fake_discord import FakeDiscord, fake_discord
from tests.support.senders import (
    SENDER_SETTINGS,
    TOPGG_AUTHORIZATION,
    standard_signed,
    standard_vote,
    topgg_legacy,
    topgg_signed,
    topgg_test,
)
from tests.worker.helpers import bridge_all, dead_letters, registry_of, run_burst, vote_body
from worker import Registry
from worker.bridge import Bridge
from worker.checks import check_registry
from worker.main import Hooks

pytestmark = pytest.mark.anyio

SPHERE_USER, TOPGG_USER, STANDARD_USER, TESTER = (
    "600000000000000001",
    "600000000000000002",
    "600000000000000003",
    "600000000000000004",
)


def handlers() -> Registry:
    return registry_of(example)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url, **SENDER_SETTINGS)


@pytest.fixture
def discord(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    with fake_discord() as fake:
        monkeypatch.setenv("DISCORD_WEBHOOK_URL", fake.webhook_url)
        monkeypatch.setenv("VOTE_REMINDER_HOURS", str(0.3 / 3600))  # 0.3 s instead of 12 h
        yield fake


def topgg_vote_expiring(user: str, weight: int, in_seconds: float) -> bytes:
    now = datetime.now(UTC)
    return json.dumps(
        {
            "type": "vote.create",
            "data": {
                "id": f"9{user}",
                "weight": weight,
                "created_at": now.isoformat(),
                "expires_at": (now + timedelta(seconds=in_seconds)).isoformat(),
                "project": {
                    "id": "1",
                    "type": "server",
                    "platform": "discord",
                    "platform_id": "111111111111111111",
                },
                "user": {"id": "2", "platform_id": user, "name": "voter", "avatar_url": None},
            },
        }
    ).encode()


async def deliver_and_handle(
    redis: Redis, settings: Settings, requests: list[tuple[str, bytes, dict[str, str]]]
) -> None:
    await deliver(settings, requests)
    registry = handlers()
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry, Hooks.from_module(example))


def test_the_example_passes_the_start_up_checks_and_serves_every_sender() -> None:
    assert check_registry(handlers()) == []
    for stored_type in (
        "VOTE_ADD",
        "topgg:vote.create",
        "topgg:webhook.test",
        "topgg:upvote",
        "standard:vote.create",
    ):
        assert [h.name for h in handlers().for_type(stored_type)] == ["reward-voter"]  # not the reminder


async def test_voters_of_every_site_are_rewarded_by_weight_thanked_and_reminded(
    redis: Redis, settings: Settings, discord: FakeDiscord
) -> None:
    sphere = vote_body(user_id=SPHERE_USER)
    topgg = topgg_vote_expiring(TOPGG_USER, weight=2, in_seconds=0.3)
    standard = standard_vote(user=STANDARD_USER)
    await deliver_and_handle(
        redis,
        settings,
        [
            ("/webhook", sphere, signed(sphere)),
            ("/webhook/topgg", topgg, topgg_signed(topgg)),
            ("/webhook/standard", standard, standard_signed(standard)),
        ],
    )

    points = {k.decode(): int(v) for k, v in (await redis.hgetall(example.POINTS_KEY)).items()}
    assert points == {SPHERE_USER: 1, TOPGG_USER: 2, STANDARD_USER: 1}
    posts = [c.body["content"] for c in discord.answered("webhook", 204) if c.body]
    assert f"Thank you for voting on top.gg, <@{TOPGG_USER}>! It counts double this weekend!" in posts
    assert f"Thank you for voting on Sphere, <@{SPHERE_USER}>!" in posts
    for user, site in ((SPHERE_USER, "Sphere"), (TOPGG_USER, "top.gg"), (STANDARD_USER, "our listing")):
        assert posts.count(f"<@{user}>, you can vote for us on {site} again!") == 1
    assert len(posts) == 6
    assert await dead_letters(redis) == []


async def test_a_test_delivery_earns_nothing_and_schedules_nothing(
    redis: Redis, settings: Settings, discord: FakeDiscord
) -> None:
    tester_v1 = topgg_test().replace(b"258317078560243712", TESTER.encode())
    tester_v0 = topgg_legacy("test").replace(b"258317078560243712", TESTER.encode())
    standard = standard_vote(user=TESTER, test=True)
    await deliver_and_handle(
        redis,
        settings,
        [
            ("/webhook/topgg", tester_v1, topgg_signed(tester_v1)),
            ("/webhook/topgg", tester_v0, {"Authorization": TOPGG_AUTHORIZATION}),
            ("/webhook/standard", standard, standard_signed(standard)),
        ],
    )

    assert await redis.hgetall(example.POINTS_KEY) == {}
    assert discord.calls == []
    assert await dead_letters(redis) == []


def test_the_reminder_is_due_at_the_sites_expiry_or_twelve_hours_later() -> None:
    now = datetime(2026, 2, 9, 0, 47, 14, tzinfo=UTC)
    expiring = Vote(
        source="topgg", user_id="1", target_id="2", expires_at=now + timedelta(hours=11, minutes=30),
        payload=VoteAdd(event="VOTE_ADD", guild_id="2", user_id="1"),
    )  # fmt: skip
    expired = expiring.model_copy(update={"expires_at": now - timedelta(minutes=1)})
    sphere = expiring.model_copy(update={"source": "sphere", "expires_at": None})

    assert example.reminder_delay(expiring, now, 12) == 11.5 * 3600
    assert example.reminder_delay(expired, now, 12) == 0
    assert example.reminder_delay(sphere, now, 12) == 12 * 3600
    assert example.reminder_hours({}) == 12


def test_a_bad_reminder_setting_stops_start_up_with_one_line() -> None:
    with pytest.raises(SystemExit, match="VOTE_REMINDER_HOURS must be a number"):
        example.reminder_hours({"VOTE_REMINDER_HOURS": "twelve"})
