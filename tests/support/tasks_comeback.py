"""Test tasks whose handler fails its first attempt, as a call to a service that is down would.

The retry is due a few seconds later (``backoff=4``: 3 to 4 s), long enough for a test to kill the
worker that ran the first attempt and start another one before it.
"""

from __future__ import annotations

from relay.core.events import VoteAdd
from tests.support.task_runs import record
from worker import Context, on


@on(VoteAdd, backoff=4, max_attempts=3)
async def comeback(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event)
    if ctx["attempt"] == 1:
        raise RuntimeError("the service is down")
