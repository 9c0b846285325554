"""A job naming a handler its worker lacks (workers of two versions during a rolling deploy).

arq alone would drop such a job ("function not found": no retry, no dead letter). Every job calls
the one function ``relay.run_handler`` instead, which defers a job for a handler it lacks and, if no
worker ever has it, dead-letters it. A real Redis, arq in burst mode.
"""

from __future__ import annotations

from typing import Any

import pytest
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.asyncio import Redis

from relay.core.events import VoteAdd
from relay.core.settings import Settings
from tests.worker.helpers import bridge_all, dead_letters, inprocess_options, store, vote_body
from worker import Context, Registry
from worker.bridge import Bridge
from worker.keys import ARQ_QUEUE, failing_redis_key, skipped_redis_key
from worker.main import build_worker_settings

pytestmark = pytest.mark.anyio


def arq_worker(settings: Settings, registry: Registry, **options: Any) -> Worker:
    kwargs = build_worker_settings(settings, registry, options=inprocess_options(**options))
    return Worker(**kwargs, burst=True, handle_signals=False)


async def burst(settings: Settings, registry: Registry, **options: Any) -> Worker:
    """Run `registry` in burst mode until the queue is empty (deferred jobs included)."""
    worker = arq_worker(settings, registry, **options)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker


async def step(redis: Redis, settings: Settings, registry: Registry, *, times: int, **options: Any) -> Worker:
    """Run every job due now once, `times` over: one worker's runs, counted exactly."""
    worker = arq_worker(settings, registry, **options)
    worker.ctx["redis"] = worker.pool  # what arq's start-up would set
    try:
        for _ in range(times):
            for job_id, score in await redis.zrangebyscore(
                ARQ_QUEUE, "-inf", timestamp_ms(), withscores=True
            ):
                await worker.run_job(job_id.decode(), int(score))
    finally:
        await worker.close()
    return worker


def versions() -> tuple[Registry, Registry, list[tuple[str, str, int]]]:
    """The old version's handlers, the new one's (which adds ``thank_voter``), and what ran."""
    old, new, ran = Registry(), Registry(), []

    for registry in (old, new):

        @registry.on("VOTE_ADD")
        async def reward_voter(ctx: Context, event: VoteAdd) -> None:
            ran.append((ctx["handler"], ctx["event_id"], ctx["attempt"]))

    @new.on("VOTE_ADD", max_attempts=2, backoff=0)
    async def thank_voter(ctx: Context, event: VoteAdd) -> None:
        ran.append((ctx["handler"], ctx["event_id"], ctx["attempt"]))
        raise ConnectionError("discord is down")

    return old, new, ran


async def test_a_job_no_worker_has_the_handler_for_is_deferred_then_dead_lettered_never_dropped(
    redis: Redis, settings: Settings
) -> None:
    old, new, ran = versions()
    entry_id = await store(redis, vote_body())
    await bridge_all(Bridge(redis, new, settings))  # the new version's bridge queued both jobs

    worker = await burst(settings, old, unknown_handler_tries=3, unknown_handler_backoff=0)

    assert ran == [("reward_voter", entry_id, 1)]
    [letter] = await dead_letters(redis)
    assert (letter.entry_id, letter.handler, letter.type) == (entry_id, "thank_voter", "VOTE_ADD")
    assert (letter.error_type, letter.attempts) == ("UnknownHandler", 0)  # never run anywhere
    assert "'thank_voter'" in letter.error and "3 tries" in letter.error
    assert (worker.jobs_retried, worker.jobs_failed) == (2, 0)  # deferred twice, never failed by arq
    assert await redis.zcard(ARQ_QUEUE) == 0
    job_id = f"{entry_id}:thank_voter"
    assert not await redis.exists(skipped_redis_key(job_id), failing_redis_key(job_id))


async def test_runs_skipped_by_an_old_worker_are_not_attempts_for_the_new_one(
    redis: Redis, settings: Settings
) -> None:
    old, new, ran = versions()
    entry_id = await store(redis, vote_body())
    await bridge_all(Bridge(redis, new, settings))

    # The old worker takes both jobs: it runs reward_voter and skips thank_voter twice.
    worker = await step(redis, settings, old, times=2, unknown_handler_tries=10, unknown_handler_backoff=0)
    assert (worker.jobs_complete, worker.jobs_retried, worker.jobs_failed) == (1, 2, 0)
    assert await dead_letters(redis) == []
    assert await redis.zcard(ARQ_QUEUE) == 1  # still waiting for a worker that has the handler

    await burst(settings, new)

    # arq's run counter reached 4, but the handler saw its own two attempts and no more.
    assert ran == [("reward_voter", entry_id, 1), ("thank_voter", entry_id, 1), ("thank_voter", entry_id, 2)]
    [letter] = await dead_letters(redis)
    assert (letter.handler, letter.error_type, letter.attempts) == ("thank_voter", "ConnectionError", 2)
    assert await redis.zcard(ARQ_QUEUE) == 0
    assert not await redis.exists(skipped_redis_key(f"{entry_id}:thank_voter"))


async def test_a_job_skipped_once_then_run_successfully_leaves_no_bookkeeping(
    redis: Redis, settings: Settings
) -> None:
    old, new, ran = Registry(), Registry(), []

    @old.on("REVIEW_ADD")
    async def log_review(ctx: Context, event: object) -> None:
        pass

    @new.on("VOTE_ADD")
    async def reward_voter(ctx: Context, event: VoteAdd) -> None:
        ran.append(ctx["attempt"])

    entry_id = await store(redis, vote_body())
    await bridge_all(Bridge(redis, new, settings))
    await step(redis, settings, old, times=1, unknown_handler_backoff=0)
    await burst(settings, new)

    assert ran == [1]
    assert await dead_letters(redis) == []
    assert not await redis.exists(skipped_redis_key(f"{entry_id}:reward_voter"))
