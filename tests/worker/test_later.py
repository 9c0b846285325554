"""``ctx["later"]``: a deferred job for another handler of the same event, queued once."""

from __future__ import annotations

import pytest
from arq.utils import timestamp_ms
from redis.asyncio import Redis

from relay.core.events import ReviewAdd, VoteAdd
from relay.core.keys import StoredEvent
from relay.core.settings import Settings
from tests.worker.helpers import bridge_all, dead_letters, run_burst, store, vote_body
from worker import Context, Registry
from worker.bridge import Bridge
from worker.jobs import run_attempt
from worker.keys import ARQ_QUEUE

pytestmark = pytest.mark.anyio


async def test_a_scheduled_handler_runs_later_once_and_never_for_new_events(
    redis: Redis, settings: Settings
) -> None:
    registry, ran, scheduled = Registry(), [], []

    @registry.on(VoteAdd, backoff=0)
    async def give(ctx: Context, event: VoteAdd) -> None:
        scheduled.append(await ctx["later"]("take-back", 0.2))
        if ctx["attempt"] == 1:
            raise RuntimeError("fails after scheduling: the retry schedules again")

    @registry.on(VoteAdd, name="take-back", scheduled=True)
    async def take_back(ctx: Context, event: VoteAdd) -> None:
        ran.append((ctx["event_id"], ctx["job_id"]))

    entry = await store(redis, vote_body())
    assert (await bridge_all(Bridge(redis, registry, settings))).jobs == 1  # "take-back" is not queued
    await run_burst(settings, registry)

    assert scheduled == [True, False]  # the retry found it queued already
    assert ran == [(entry, f"{entry}:take-back")]
    assert await dead_letters(redis) == []


async def test_the_job_is_due_after_the_delay(redis: Redis, settings: Settings) -> None:
    registry = Registry()

    @registry.on(VoteAdd)
    async def give(ctx: Context, event: VoteAdd) -> None:
        await ctx["later"]("take-back", 3600)

    @registry.on(VoteAdd, name="take-back", scheduled=True)
    async def take_back(ctx: Context, event: VoteAdd) -> None: ...

    body = vote_body()
    entry = await store(redis, body)
    before = timestamp_ms()
    # One attempt of `give` alone: a burst worker would wait the hour for the job it schedules.
    ctx: dict[str, object] = {"redis": redis, "job_try": 1, "job_id": f"{entry}:give"}
    handler = registry.get("give")
    assert handler is not None
    await run_attempt(
        handler, settings, ctx, StoredEvent(entry, "VOTE_ADD", body, before, ""), registry=registry
    )
    score = await redis.zscore(ARQ_QUEUE, f"{entry}:take-back")
    assert score is not None and score >= before + 3_600_000


@pytest.mark.parametrize(
    ("target", "message"), [("nobody", "no handler named 'nobody'"), ("reviews", "does not take VOTE_ADD")]
)
async def test_scheduling_what_cannot_run_is_refused(
    redis: Redis, settings: Settings, target: str, message: str
) -> None:
    registry, errors = Registry(), []

    @registry.on(VoteAdd, max_attempts=1)
    async def give(ctx: Context, event: VoteAdd) -> None:
        try:
            await ctx["later"](target, 1)
        except ValueError as exc:
            errors.append(str(exc))

    @registry.on(ReviewAdd, name="reviews", scheduled=True)
    async def reviews(ctx: Context, event: ReviewAdd) -> None: ...

    await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)
    assert len(errors) == 1 and message in errors[0]
