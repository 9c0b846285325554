"""Every job ends in success or a dead letter, even when Redis refuses the dead letter's first write.

The job stays queued, its next run writes the dead letter, and the handler is not run again.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from relay.core.keys import DEAD_STREAM
from relay.core.settings import Settings
from tests.worker.helpers import bridge_all, dead_letters, eventually, run_burst, store, vote_body
from worker import Context, Permanent, Registry
from worker.bridge import Bridge
from worker.keys import ARQ_QUEUE

pytestmark = pytest.mark.anyio


async def test_a_dead_letter_redis_refused_is_written_by_the_jobs_next_run(
    redis: Redis, settings: Settings
) -> None:
    registry = Registry()
    runs: list[int] = []

    @registry.on("VOTE_ADD", max_attempts=1)
    async def refuse(ctx: Context, event: object) -> None:
        runs.append(ctx["attempt"])
        raise Permanent("this guild is not configured")

    entry_id = await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    job_id = f"{entry_id}:refuse"
    await redis.set(DEAD_STREAM, "not a stream")  # every XADD to it now fails with WRONGTYPE

    worker = asyncio.create_task(run_burst(settings, registry))

    async def deferred() -> bool:  # the run failed to write the dead letter and put the job back
        score = await redis.zscore(ARQ_QUEUE, job_id)
        now_s, now_us = await redis.time()
        return bool(runs) and score is not None and score > int(now_s) * 1000 + int(now_us) // 1000

    await eventually(deferred)
    assert not worker.done(), "the job was dropped instead of kept for its dead letter"
    await redis.delete(DEAD_STREAM)
    await asyncio.wait_for(worker, 60)

    [letter] = await dead_letters(redis)
    assert (letter.entry_id, letter.handler, letter.attempts) == (entry_id, "refuse", 1)
    assert runs == [1], "the handler ran again instead of only its dead letter being written"
    assert await redis.zcard(ARQ_QUEUE) == 0
