"""Your handlers: what happens when someone votes for or reviews your server on Sphere.

This module is yours to edit; ``RELAY_TASKS`` can name another one instead (``examples.discord``
is a longer example: roles for voters, reviews as embeds). docs/handlers.md is the guide.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx

from relay.core.events import ReviewAdd, VoteAdd
from worker import Context, Permanent, Retry, on

log = logging.getLogger("worker.tasks")

DISCORD_WEBHOOK_URL = "RELAY_DISCORD_WEBHOOK_URL"
"""Example setting, not a relay one: a Discord channel webhook URL (Channel settings > Integrations)."""


class TaskContext(Context, total=False):
    """`Context` plus what `startup` adds (``total=False``: a key may be absent)."""

    http: httpx.AsyncClient
    discord_webhook_url: str


async def startup(ctx: dict[str, Any]) -> None:
    """Once per worker process, before any handler: one HTTP client for every handler run."""
    url = os.environ.get(DISCORD_WEBHOOK_URL, "").strip()
    if url:
        ctx["discord_webhook_url"] = url
    else:
        log.info("%s is not set: votes will not be thanked on Discord", DISCORD_WEBHOOK_URL)
    ctx["http"] = httpx.AsyncClient(timeout=10, headers={"User-Agent": "sphere-relay"})


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["http"].aclose()


@on(VoteAdd)
async def thank_voter(ctx: TaskContext, event: VoteAdd) -> None:
    """Thank the voter in your Discord channel, once per vote however often this runs."""
    url = ctx.get("discord_webhook_url")
    if not url:
        return
    async with ctx["once"]("thank") as first:
        if first:
            response = await ctx["http"].post(
                url,
                json={
                    "content": f"Thank you for voting for our server, <@{event.user_id}>!",
                    "allowed_mentions": {"users": [event.user_id]},  # ping the voter and nobody else
                },
            )
            raise_for_discord(response)


@on(ReviewAdd, max_attempts=3)
async def log_review(ctx: Context, event: ReviewAdd) -> None:
    """Keep a line per review in the worker's log (the text itself stays out of the log)."""
    review = event.review
    log.info(
        "%d-star review %s from user %s on guild %s: %r",
        review.stars, review.id, event.user_id, event.guild_id, review.content.title,
        extra={"entry_id": ctx["event_id"]},
    )  # fmt: skip


def raise_for_discord(response: httpx.Response) -> None:
    """429: retry when Discord says; another 4xx: `Permanent` (retrying cannot fix it); 5xx: retry."""
    if response.status_code == 429:
        wait = response.headers.get("Retry-After", "")
        raise Retry(defer=float(wait) if wait.replace(".", "", 1).isdigit() else 5.0)
    if 400 <= response.status_code < 500:
        raise Permanent(f"Discord refused the message: HTTP {response.status_code}")
    response.raise_for_status()
