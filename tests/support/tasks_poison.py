"""Test tasks: a poison pill, a handler that kills the worker process running it."""

from __future__ import annotations

import os

from relay.core.events import VoteAdd
from tests.support.task_runs import record
from worker import Context, on


@on(VoteAdd, max_attempts=2, timeout=0.5)  # a short timeout: arq re-runs a dead run after timeout + 12 s
async def crash_worker(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event)
    os._exit(1)
