"""Dead letters: reading them back and replaying one once its handler is fixed."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from relay.core.events import VoteAdd
from relay.core.keys import DEAD_STREAM
from relay.core.settings import Settings
from tests.worker.helpers import bridge_all, dead_letters, run_burst, store, vote_body
from worker import Context, Permanent, Registry
from worker.bridge import Bridge
from worker.deadletter import Failure, get_dead, list_dead, replay, trimmed_traceback
from worker.keys import ARQ_QUEUE

pytestmark = pytest.mark.anyio

WEEK_MS = 7 * 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_a_fixed_handler_replays_a_dead_letter_once_with_the_original_event_id(
    redis: Redis, settings: Settings
) -> None:
    registry = Registry()
    broken = True
    seen: list[tuple[str, int]] = []

    @registry.on("VOTE_ADD", max_attempts=2, backoff=0)
    async def reward_voter(ctx: Context, event: VoteAdd) -> None:
        seen.append((ctx["event_id"], ctx["attempt"]))
        if broken:
            raise RuntimeError("role id not configured")

    entry_id = await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)
    [letter] = await dead_letters(redis)

    broken = False
    assert await replay(redis, letter, now_ms=now_ms(), expires_ms=WEEK_MS)
    assert await redis.xlen(DEAD_STREAM) == 0  # removed together with the enqueue
    await run_burst(settings, registry)

    assert seen == [(entry_id, 1), (entry_id, 2), (entry_id, 1)]
    assert await dead_letters(redis) == []
    assert await redis.zcard(ARQ_QUEUE) == 0


async def test_a_dead_letter_replayed_twice_runs_once(redis: Redis, settings: Settings) -> None:
    registry = Registry()
    runs: list[str] = []

    @registry.on("VOTE_ADD")
    async def refuse_once(ctx: Context, event: VoteAdd) -> None:
        runs.append(ctx["job_id"])
        if len(runs) == 1:
            raise Permanent("not yet")

    await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)
    [letter] = await dead_letters(redis)

    assert await replay(redis, letter, now_ms=now_ms(), expires_ms=WEEK_MS)
    assert not await replay(redis, letter, now_ms=now_ms(), expires_ms=WEEK_MS)  # e.g. two operators at once
    await run_burst(settings, registry)

    assert len(runs) == 2
    assert runs[1] == f"{letter.entry_id}:refuse_once:replay:{letter.id}"


async def test_dead_letters_are_listed_in_order_and_found_by_id(redis: Redis, settings: Settings) -> None:
    registry = Registry()

    @registry.on("VOTE_ADD")
    async def refuse(ctx: Context, event: VoteAdd) -> None:
        raise Permanent(f"no reward for {event.user_id}")

    for _ in range(3):
        await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)

    letters = await list_dead(redis)
    assert len(letters) == 3
    assert [letter.id for letter in letters] == sorted(letter.id for letter in letters)
    assert [letter.id for letter in await list_dead(redis, count=2)] == [letters[0].id, letters[1].id]
    assert await get_dead(redis, letters[1].id) == letters[1]
    assert await get_dead(redis, "1-0") is None


async def test_a_dead_letter_without_handler_cannot_be_replayed(redis: Redis, settings: Settings) -> None:
    await redis.xadd("relay:events", {"type": "VOTE_ADD"})  # malformed: dead-lettered by the bridge
    await Bridge(redis, Registry(), settings).step()
    [letter] = await dead_letters(redis)

    with pytest.raises(ValueError, match="names no handler"):
        await replay(redis, letter, now_ms=now_ms(), expires_ms=WEEK_MS)
    assert await redis.xlen(DEAD_STREAM) == 1


def test_a_long_traceback_keeps_its_end() -> None:
    try:
        try:
            raise OSError("connection reset by peer; " * 200)
        except OSError as cause:
            raise KeyError("the real cause") from cause
    except KeyError as exc:
        text = trimmed_traceback(exc, limit=2000)
        failure = Failure.from_exception(exc)

    assert len(text) < 2100
    assert text.startswith("… (traceback trimmed)")
    assert text.rstrip().endswith("KeyError: 'the real cause'")
    assert failure.error_type == "KeyError"
    assert failure.message == "'the real cause'"
