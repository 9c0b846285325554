"""The bench's handler module (``RELAY_TASKS=bench.noop_tasks``): a handler that does nothing.

Nothing but a trace the bench reads back: the wall-clock time the handler started, per stream entry
(`bench.traces`: buffered in the process, written to a file every few ms). The count of traces tells
when every event has been handled; each time, minus the entry's XADD time, is the ack-to-handler
latency. The worker's own Redis calls for the job are all the Redis work there is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.traces import TRACE_DIR_ENV, TraceWriter
from relay.core.events import ReviewAdd
from worker import on
from worker.context import Context

traces = TraceWriter(Path(os.environ[TRACE_DIR_ENV]))


@on("REVIEW_ADD")
async def noop(ctx: Context, event: ReviewAdd) -> None:
    traces.started(ctx["event_id"], time.time())


def shutdown(ctx: Context) -> None:
    traces.close()
