"""The I/O-bound bench handler (``RELAY_TASKS=bench.io_tasks``): each event awaits one 50 ms HTTP answer.

It GETs ``BENCH_IO_URL`` (`bench.slow_server`) over one ``httpx.AsyncClient`` per worker process,
as a real handler calling Discord would, then writes its trace (`bench.traces`): here the time it
*finished*, so that a trace per event means every event was handled.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from bench.slow_server import IO_URL_ENV
from bench.traces import TRACE_DIR_ENV, TraceWriter
from relay.core.events import ReviewAdd
from worker import Context, on

traces = TraceWriter(Path(os.environ[TRACE_DIR_ENV]))


class TaskContext(Context, total=False):
    http: httpx.AsyncClient


async def startup(ctx: dict[str, Any]) -> None:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    ctx["http"] = httpx.AsyncClient(base_url=os.environ[IO_URL_ENV], timeout=10, limits=limits)


async def shutdown(ctx: dict[str, Any]) -> None:
    traces.close()
    await ctx["http"].aclose()


@on(ReviewAdd)
async def call_service(ctx: TaskContext, event: ReviewAdd) -> None:
    response = await ctx["http"].get("/")
    response.raise_for_status()
    traces.started(ctx["event_id"], time.time())
