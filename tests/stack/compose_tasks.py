"""Handlers for `make compose-test`, mounted into the worker containers as ``compose_tasks``.

Self-contained (the image holds `relay` and `worker`, not `tests`): each run adds one to its
(handler, event id) field of a Redis hash, which the test reads with ``redis-cli``.
"""

from __future__ import annotations

import asyncio

from relay.core.events import Event, ReviewAdd, VoteAdd
from worker import Context, on

RUNS = "compose-test:runs"
"""Hash: ``<handler> <event id>`` -> how many times that handler ran for that event."""

WORK_SECONDS = 1.0
"""Each run takes this long, so that a worker killed mid-burst holds events it has not finished."""


async def count(ctx: Context) -> None:
    await asyncio.sleep(WORK_SECONDS)
    await ctx["redis"].hincrby(RUNS, f"{ctx['handler']} {ctx['event_id']}", 1)


@on(VoteAdd, timeout=5)
async def reward_voter(ctx: Context, event: VoteAdd) -> None:
    await count(ctx)


@on(ReviewAdd, timeout=5)
async def log_review(ctx: Context, event: ReviewAdd) -> None:
    await count(ctx)


@on("*", timeout=5)
async def audit(ctx: Context, event: Event) -> None:
    await count(ctx)
