"""Where the test task modules record what their handlers did, so a test can read it from Redis.

Kept apart from the ``tasks_*`` modules: importing this registers no handler.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis

from relay.core.events import Event
from worker import Context

RUNS = "test:runs"
"""A list of JSON records, one per handler run (and phase)."""
HOOKS = "test:hooks"
"""A list of ``startup:<pid>`` / ``shutdown:<pid>`` marks."""
RELEASE = "test:release"
"""`tasks_slow` handlers wait for an item here."""


async def record(ctx: Context, event: Event, phase: str = "run") -> None:
    await ctx["redis"].rpush(
        RUNS,
        json.dumps(
            {
                "handler": ctx["handler"],
                "event_id": ctx["event_id"],
                "attempt": ctx["attempt"],
                "event_type": ctx["event_type"],
                "model": type(event).__name__,
                "phase": phase,
                "pid": os.getpid(),
            }
        ),
    )


def runs(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(RUNS, 0, -1)]
