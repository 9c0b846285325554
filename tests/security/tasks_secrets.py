"""Handlers for the secret-leak test: one fails every time (a traceback and a dead letter), one succeeds."""

from __future__ import annotations

import logging

from relay.core.events import ReviewAdd, VoteAdd
from worker import Context, on

log = logging.getLogger(__name__)


@on(VoteAdd, max_attempts=1)
async def refuse_votes(ctx: Context, event: VoteAdd) -> None:
    raise RuntimeError(f"refusing the vote of user {event.user_id}")


@on(ReviewAdd)
async def accept_reviews(ctx: Context, event: ReviewAdd) -> None:
    log.info("review %s accepted", event.review.id)
