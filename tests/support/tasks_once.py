"""Test tasks for the crash window: the side effect is done, then the worker dies before the outcome.

`grant` appends to `EFFECTS` inside ``ctx["once"]``, marks `AFTER`, and on its first attempt then
waits (for the test's kill -9); a later run must find the effect done and not repeat it.
"""

from __future__ import annotations

import asyncio
import os

from relay.core.events import VoteAdd
from tests.support.task_runs import record
from worker import Context, on

EFFECTS = "test:effects"
AFTER = "test:after-effect"


@on(VoteAdd, timeout=2, max_attempts=3)
async def grant(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event)
    async with ctx["once"]("grant-role") as first:
        if first:
            await ctx["redis"].rpush(EFFECTS, f"{ctx['event_id']} {os.getpid()}")
    await ctx["redis"].rpush(AFTER, str(os.getpid()))
    if ctx["attempt"] == 1:
        await asyncio.sleep(3600)  # killed here: the effect is recorded, the outcome is not
