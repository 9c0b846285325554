"""What a forwarded request carries: the JSON body, and its Standard Webhooks headers. Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from relay.core.events import Event, ReviewAdd, VoteAdd

SOURCE_SPHERE = "sphere"
"""The source of an entry that names none (written before other senders existed)."""


def normalized(event: Event) -> tuple[str, dict[str, Any]] | None:
    """``("vote", {...})`` or ``("review", {...})``: the event in the relay's sender-neutral shape."""
    if isinstance(event, VoteAdd):
        return "vote", {"user_id": event.user_id, "guild_id": event.guild_id}
    if isinstance(event, ReviewAdd):
        review = event.review
        return "review", {
            "user_id": event.user_id,
            "guild_id": event.guild_id,
            "review_id": review.id,
            "stars": review.stars,
            "title": review.content.title,
            "description": review.content.description,
            "published_ms": review.published_timestamp,
        }
    return None


def body(
    *, event_type: str, source: str, entry_id: str, received_ms: int, event: Event, payload: bytes
) -> bytes:
    """The forwarded JSON: the event's type and source, its ``vote`` or ``review`` (else null), and the
    original ``payload``, spliced in byte for byte (it was stored as valid JSON)."""
    shape = normalized(event)
    head = {
        "type": event_type,
        "source": source,
        "event_id": entry_id,
        "received_ms": received_ms,
        "vote": shape[1] if shape and shape[0] == "vote" else None,
        "review": shape[1] if shape and shape[0] == "review" else None,
    }
    opening = json.dumps(head, separators=(",", ":"), ensure_ascii=False)[:-1]
    return opening.encode() + b',"payload":' + payload.strip() + b"}"


def signed_headers(
    signer: Webhook, webhook_id: str, data: bytes, now: datetime | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers for `data` sent at `now` (the attempt's time)."""
    at = now or datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer.sign(webhook_id, at, data),
        "content-type": "application/json",
    }
