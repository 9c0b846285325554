"""The bench's handler module (``RELAY_TASKS=bench.noop_tasks``): a handler that does nothing.

Nothing but one trace the bench reads back: the wall-clock time the handler started, per stream entry.
The count of traces tells when every event has been handled; each time, minus the moment the sender
saw the edge's 2xx, is the ack-to-handler latency. One HSET is the least a handler can write.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import cast

from bench.keys import STARTED
from relay.events import ReviewAdd
from worker import on
from worker.context import Context


@on("REVIEW_ADD")
async def noop(ctx: Context, event: ReviewAdd) -> None:
    started = time.time()
    # redis-py types hset as sync-or-async; on arq's asyncio client it is a coroutine.
    await cast(Awaitable[int], ctx["redis"].hset(STARTED, ctx["event_id"], repr(started)))
