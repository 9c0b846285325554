"""Test tasks with every outcome a run can have: success, a retry then success, retries until dead,
and `Permanent`. Every run is recorded (`tests.support.task_runs`)."""

from __future__ import annotations

from relay.core.events import ReviewAdd, VoteAdd
from tests.support.task_runs import record
from worker import Context, Permanent, on


@on(VoteAdd)
async def succeed(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event)


@on(VoteAdd, max_attempts=3, backoff=0)
async def flaky(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event)
    if ctx["attempt"] == 1:
        raise RuntimeError("fails on the first attempt")


@on(ReviewAdd, max_attempts=2, backoff=0)
async def doomed(ctx: Context, event: ReviewAdd) -> None:
    await record(ctx, event)
    raise RuntimeError("always fails")


@on(ReviewAdd)
async def refuse(ctx: Context, event: ReviewAdd) -> None:
    await record(ctx, event)
    raise Permanent("cannot ever work")
