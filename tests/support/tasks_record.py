"""Test tasks: every handler records its run; startup and shutdown record themselves."""

from __future__ import annotations

import os
from typing import Any

from relay.core.events import Event, ReviewAdd, VoteAdd
from tests.support.task_runs import HOOKS, record
from worker import Context, on


async def startup(ctx: dict[str, Any]) -> None:
    await ctx["redis"].rpush(HOOKS, f"startup:{os.getpid()}")


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["redis"].rpush(HOOKS, f"shutdown:{os.getpid()}")


@on(VoteAdd)
async def reward_voter(ctx: Context, event: VoteAdd) -> None:
    await record(ctx, event)


@on("REVIEW_ADD")
async def log_review(ctx: Context, event: ReviewAdd) -> None:
    await record(ctx, event)


@on("*")
async def audit(ctx: Context, event: Event) -> None:
    await record(ctx, event)
