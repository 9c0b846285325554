"""``ctx["once"]``: an effect done once per (event, handler, name) across retries; a failed one is redone."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from relay.core.events import VoteAdd
from relay.core.settings import Settings
from tests.conftest import make_settings
from tests.worker.helpers import bridge_all, dead_letters, run_burst, store, vote_body
from worker import Context, Registry
from worker.bridge import Bridge
from worker.keys import once_redis_key
from worker.once import Once, forget_effects

pytestmark = pytest.mark.anyio


async def run(redis: Redis, settings: Settings, registry: Registry) -> str:
    entry = await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)
    return entry


async def test_an_effect_done_before_a_failure_is_not_redone_on_the_retry(
    redis: Redis, settings: Settings
) -> None:
    registry, effects, firsts = Registry(), [], []

    @registry.on(VoteAdd, backoff=0)
    async def grant(ctx: Context, event: VoteAdd) -> None:
        async with ctx["once"]("grant-role") as first:
            firsts.append(first)
            if first:
                effects.append(ctx["attempt"])
        if ctx["attempt"] == 1:
            raise RuntimeError("failed after the effect, before the outcome")

    await run(redis, settings, registry)
    assert (firsts, effects) == ([True, False], [1])
    assert await dead_letters(redis) == []


async def test_an_effect_that_fails_is_done_again_not_skipped(redis: Redis, settings: Settings) -> None:
    registry, tries = Registry(), []

    @registry.on(VoteAdd, backoff=0)
    async def grant(ctx: Context, event: VoteAdd) -> None:
        async with ctx["once"]("grant-role") as first:
            if first:
                tries.append(ctx["attempt"])
                if ctx["attempt"] < 3:
                    raise ConnectionError("Discord is down")

    await run(redis, settings, registry)
    assert tries == [1, 2, 3]


async def test_effects_are_kept_apart_by_name_and_handler_and_kept_for_the_retention(
    redis: Redis, redis_url: str
) -> None:
    settings = make_settings(redis_url, retention_seconds=86400)
    registry, done = Registry(), []

    @registry.on(VoteAdd)
    async def first_handler(ctx: Context, event: VoteAdd) -> None:
        for name in ("post", "grant", "post"):
            async with ctx["once"](name) as first:
                if first:
                    done.append((ctx["handler"], name))

    @registry.on(VoteAdd)
    async def second_handler(ctx: Context, event: VoteAdd) -> None:
        async with ctx["once"]("post") as first:
            if first:
                done.append((ctx["handler"], "post"))

    entry = await run(redis, settings, registry)
    assert sorted(done) == [("first_handler", "grant"), ("first_handler", "post"), ("second_handler", "post")]
    key = once_redis_key(entry, "first_handler")
    assert 86_000_000 < await redis.pttl(key) <= 86_400_000
    assert await Once(redis, entry, "first_handler", keep_ms=1).done() == {"post", "grant"}

    assert await forget_effects(redis, [(entry, "first_handler")]) == 1
    assert await Once(redis, entry, "first_handler", keep_ms=1).done() == set()
    assert await Once(redis, entry, "second_handler", keep_ms=1).done() == {"post"}


async def test_an_effect_needs_a_name(redis: Redis) -> None:
    with pytest.raises(ValueError, match="needs a name"):
        Once(redis, "1-0", "h", keep_ms=1)("")
