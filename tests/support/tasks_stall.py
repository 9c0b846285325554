"""Test tasks: the first attempt hangs until the test kills its worker; later attempts finish."""

from __future__ import annotations

import asyncio

from relay.core.events import VoteAdd
from tests.support.task_runs import record
from worker import Context, on


@on(VoteAdd, timeout=2)
async def stall_first(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event, phase="start")
    if ctx["attempt"] == 1:
        await asyncio.Event().wait()  # never set: the test kills this process first
    await record(ctx, event, phase="done")
