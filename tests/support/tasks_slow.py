"""Test tasks: a handler that runs until the test releases it (an item pushed to RELEASE)."""

from __future__ import annotations

from relay.core.events import VoteAdd
from tests.support.task_runs import RELEASE, record
from worker import Context, on


@on(VoteAdd, timeout=10)
async def slow(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event, phase="start")
    await ctx["redis"].blpop([RELEASE], timeout=8)
    await record(ctx, event, phase="done")
