"""Every site's voters rewarded alike, and reminded when they may vote again.

Run it with ``RELAY_TASKS=examples.voters`` and the senders you use turned on (``RELAY_SECRET`` for
Sphere, ``RELAY_TOPGG_SECRET`` for top.gg, ...: docs/sources.md). One ``@on(Vote)`` handler serves
them all:

- a voter earns ``vote.weight`` points (2 under top.gg's weekend multiplier), kept in a Redis hash,
  and is thanked in a channel;
- a "you can vote again" reminder is scheduled with ``ctx["later"]`` for when the site lets them vote
  again: top.gg's ``expires_at``, or ``VOTE_REMINDER_HOURS`` (12) after the vote for a site that
  sends no expiry;
- a test delivery (``vote.test``: a dashboard's test button) earns nothing and schedules nothing;
  it is only logged, so you can see the path work.

Its settings are its own: ``DISCORD_WEBHOOK_URL`` (a channel webhook for the thanks and reminders;
unset, nothing is posted) and ``VOTE_REMINDER_HOURS``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, cast

import httpx

from relay.core.events import Vote
from worker import Context, Retry, on
from worker.later import hours

log = logging.getLogger("examples.voters")

POINTS_KEY = "examples:voter-points"
"""A Redis hash: Discord user id -> points earned by voting (this example's own key)."""

SITES = {"sphere": "Sphere", "topgg": "top.gg", "standard": "our listing"}


class TaskContext(Context, total=False):
    """`Context` plus what `startup` adds."""

    http: httpx.AsyncClient
    webhook_url: str
    reminder_hours: float


def reminder_hours(environ: dict[str, str] | os._Environ[str] = os.environ) -> float:
    try:
        value = float(environ.get("VOTE_REMINDER_HOURS", "").strip() or 12)
    except ValueError:
        raise SystemExit("examples.voters: VOTE_REMINDER_HOURS must be a number of hours") from None
    if value < 0:
        raise SystemExit("examples.voters: VOTE_REMINDER_HOURS must not be negative")
    return value


def reminder_delay(vote: Vote, now: datetime, default_hours: float) -> float:
    """Seconds from `now` until the voter may vote again: the site's ``expires_at`` when it sends one
    (at once if that has passed), else `default_hours` after `now`."""
    if vote.expires_at is not None:
        return max(0.0, (vote.expires_at - now).total_seconds())
    return hours(default_hours)


def check(response: httpx.Response) -> None:
    """Discord's 429: retry when it says; anything else but a 2xx fails the attempt (retried later).
    (examples/discord.py has the fuller version; importing it would register its handlers too.)"""
    if response.status_code == 429:
        raise Retry(defer=float(response.headers.get("Retry-After") or 5))
    response.raise_for_status()


async def startup(ctx: dict[str, Any]) -> None:
    ctx["http"] = httpx.AsyncClient(timeout=10, headers={"User-Agent": "sphere-relay"})
    ctx["webhook_url"] = os.environ.get("DISCORD_WEBHOOK_URL", "").strip()
    ctx["reminder_hours"] = reminder_hours()


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["http"].aclose()


async def post_once(ctx: TaskContext, key: str, content: str, user_id: str) -> None:
    """Post `content` to the channel once per event and `key`, however often the handler runs."""
    if not ctx["webhook_url"]:
        return
    async with ctx["once"](key) as first:
        if first:
            payload = {"content": content, "allowed_mentions": {"users": [user_id]}}
            check(await ctx["http"].post(ctx["webhook_url"], json=payload))


@on(Vote, name="reward-voter")
async def reward_voter(ctx: TaskContext, vote: Vote) -> None:
    if vote.test:
        # A dashboard's test button: proves the path works. Never a reward, never a reminder.
        log.info("test delivery from %s received (user %s): nothing granted", vote.source, vote.user_id)
        return
    async with ctx["once"]("points") as first:
        if first:
            # redis-py types its commands for both clients; the worker's is the asyncio one.
            await cast(Awaitable[int], ctx["redis"].hincrby(POINTS_KEY, vote.user_id, vote.weight))
    bonus = " It counts double this weekend!" if vote.weight > 1 else ""
    site = SITES.get(vote.source, vote.source)
    await post_once(ctx, "thanks", f"Thank you for voting on {site}, <@{vote.user_id}>!{bonus}", vote.user_id)
    await ctx["later"]("vote-reminder", reminder_delay(vote, datetime.now(UTC), ctx["reminder_hours"]))


@on(Vote, name="vote-reminder", scheduled=True)
async def vote_reminder(ctx: TaskContext, vote: Vote) -> None:
    site = SITES.get(vote.source, vote.source)
    await post_once(ctx, "reminder", f"<@{vote.user_id}>, you can vote for us on {site} again!", vote.user_id)
