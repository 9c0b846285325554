"""arq parity and mistakes caught at run time: ``raise Retry(defer=...)``, stable names, un-awaited work."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq.constants import job_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.asyncio import Redis

from relay.core.events import VoteAdd
from relay.core.settings import Settings
from tests.worker.helpers import (
    bridge_all,
    dead_letters,
    eventually,
    inprocess_options,
    run_burst,
    store,
    vote_body,
)
from worker import Context, Registry, Retry
from worker.bridge import Bridge
from worker.keys import ARQ_QUEUE
from worker.main import build_worker_settings

pytestmark = pytest.mark.anyio


async def test_retry_defers_by_the_handlers_delay_not_the_backoff(redis: Redis, settings: Settings) -> None:
    registry, attempts = Registry(), []

    @registry.on(VoteAdd, backoff=0)  # the backoff alone would retry at once
    async def later(ctx: Context, event: VoteAdd) -> None:
        attempts.append(ctx["attempt"])
        raise Retry(defer=600)

    entry = await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    worker = Worker(
        **build_worker_settings(settings, registry, options=inprocess_options()), handle_signals=False
    )
    before_ms = timestamp_ms()
    running = asyncio.create_task(worker.async_run())
    try:
        await eventually(lambda: asyncio.sleep(0, bool(attempts)))

        async def rescheduled() -> bool:
            return await redis.zscore(ARQ_QUEUE, f"{entry}:later") not in (
                None,
                0,
            ) and not await redis.exists(f"arq:in-progress:{entry}:later")

        await eventually(rescheduled)
        score = await redis.zscore(ARQ_QUEUE, f"{entry}:later")
    finally:
        running.cancel()
        await worker.close()
    assert attempts == [1]
    assert score is not None and score >= before_ms + 600_000  # due in ten minutes, as the handler asked
    assert await redis.exists(job_key_prefix + f"{entry}:later")  # the job is still queued, not dropped


async def test_retry_counts_as_an_attempt_and_the_last_one_is_dead_lettered(
    redis: Redis, settings: Settings
) -> None:
    registry, attempts = Registry(), []

    @registry.on(VoteAdd, max_attempts=3, backoff=60)
    async def busy(ctx: Context, event: VoteAdd) -> None:
        attempts.append(ctx["attempt"])
        raise Retry(defer=0.05)

    entry = await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)

    assert attempts == [1, 2, 3]
    [letter] = await dead_letters(redis)
    assert (letter.entry_id, letter.handler, letter.attempts, letter.error_type) == (
        entry,
        "busy",
        3,
        "Retry",
    )
    assert "on its last attempt (3 of 3)" in letter.error


async def test_a_stable_name_carries_queued_jobs_across_a_rename(redis: Redis, settings: Settings) -> None:
    before, after, ran = Registry(), Registry(), []

    @before.on(VoteAdd, name="reward")
    async def reward_voter(ctx: Context, event: VoteAdd) -> None:
        raise AssertionError("the old version never runs here")

    @after.on(VoteAdd, name="reward")
    async def give_voter_a_reward(ctx: Context, event: VoteAdd) -> None:  # renamed in a later deploy
        ran.append((ctx["job_id"], ctx["handler"]))

    entry = await store(redis, vote_body())
    await bridge_all(Bridge(redis, before, settings))  # queued by the old version
    await run_burst(settings, after)  # run by the new one

    assert ran == [(f"{entry}:reward", "reward")]
    assert await dead_letters(redis) == []


async def test_a_stable_name_is_what_dead_letters_record(redis: Redis, settings: Settings) -> None:
    registry = Registry()

    @registry.on(VoteAdd, name="grant-role", max_attempts=1)
    async def grant(ctx: Context, event: VoteAdd) -> None:
        raise RuntimeError("Discord is down")

    await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)
    [letter] = await dead_letters(redis)
    assert letter.handler == "grant-role"


async def _work(done: list[str]) -> None:
    done.append("ran")


@pytest.mark.parametrize("kind", ["plain def", "async def"])
async def test_a_handler_returning_unawaited_work_is_dead_lettered_at_once(
    redis: Redis, settings: Settings, kind: str
) -> None:
    registry, done, attempts = Registry(), [], []

    if kind == "plain def":

        @registry.on(VoteAdd, name="forgetful")
        def plain(ctx: Context, event: VoteAdd) -> Any:
            attempts.append(ctx["attempt"])
            return _work(done)  # a coroutine nobody awaits: the work never runs
    else:

        @registry.on(VoteAdd, name="forgetful")
        async def wrapped(ctx: Context, event: VoteAdd) -> Any:
            attempts.append(ctx["attempt"])
            return _work(done)

    await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)

    assert attempts == [1] and done == []  # never retried: retrying cannot fix the code
    [letter] = await dead_letters(redis)
    assert letter.error_type == "NotAwaited"
    assert "handler forgetful returned a coroutine it never awaited" in letter.error
    assert ("declare it `async def`" in letter.error) == (kind == "plain def")
