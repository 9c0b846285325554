"""Your handlers: what happens when someone votes for or reviews your server on Sphere.

This module is yours to edit; ``RELAY_TASKS`` can name another one instead. Each ``@on`` handler is
retried on failure (see `worker.on` for the options) and may run more than once for one event, so
keep side effects idempotent (`worker` explains how with ``ctx["event_id"]``).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from relay.core.events import ReviewAdd, VoteAdd
from worker import Context, Permanent, on

log = logging.getLogger("worker.tasks")

DISCORD_WEBHOOK_URL = "RELAY_DISCORD_WEBHOOK_URL"
"""Environment variable: a Discord channel webhook URL (Channel settings > Integrations > Webhooks)."""


class TaskContext(Context, total=False):
    discord_webhook_url: str


async def startup(ctx: dict[str, Any]) -> None:
    """Runs once per worker process, before any handler: open clients, read configuration."""
    url = os.environ.get(DISCORD_WEBHOOK_URL, "").strip()
    if url:
        ctx["discord_webhook_url"] = url
    else:
        log.info("%s is not set: votes will not be thanked on Discord", DISCORD_WEBHOOK_URL)


@on(VoteAdd)
def thank_voter(ctx: TaskContext, event: VoteAdd) -> None:
    """Thank the voter in your Discord channel.

    A plain ``def`` runs in a thread, so the blocking HTTP call does not hold up other handlers.
    """
    url = ctx.get("discord_webhook_url")
    if not url:
        return
    post_json(
        url,
        {
            "content": f"Thank you for voting for our server, <@{event.user_id}>!",
            "allowed_mentions": {"users": [event.user_id]},  # ping the voter and nobody else
        },
    )


@on(ReviewAdd, max_attempts=3)
async def log_review(ctx: Context, event: ReviewAdd) -> None:
    """Keep a line per review in the worker's log (the text itself stays out of the log)."""
    review = event.review
    log.info(
        "%d-star review %s from user %s on guild %s: %r",
        review.stars, review.id, event.user_id, event.guild_id, review.content.title,
        extra={"entry_id": ctx["event_id"]},
    )  # fmt: skip


def post_json(url: str, payload: dict[str, Any]) -> None:
    """POST `payload` as JSON; a refusal that retrying cannot fix raises `Permanent`."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "sphere-relay"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except urllib.error.HTTPError as error:
        error.close()  # it holds the response and its socket open
        # Rate limits (429) and server errors pass; any other 4xx means the URL or the message is wrong.
        if 400 <= error.code < 500 and error.code != 429:
            raise Permanent(f"Discord refused the message: HTTP {error.code}") from error
        raise
