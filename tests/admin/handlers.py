"""The admin tests' handlers, as plain functions: `tasks_admin` registers them for worker processes,
and the tests build registries of their own from them (importing this registers nothing)."""

from __future__ import annotations

from relay.core.events import ReviewAdd, VoteAdd
from tests.support.task_runs import record
from worker import Context

BROKEN = "test:admin:broken"
"""While this key exists, `moderate_review` fails: a test's way to break, then fix, a handler."""
FAILURE = "moderation API down: <b>bold</b> & <script>alert(1)</script>"


async def moderate_review(ctx: Context, event: ReviewAdd) -> None:
    if await ctx["redis"].exists(BROKEN):
        raise RuntimeError(FAILURE)
    await record(ctx, event)


async def count_vote(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event)
