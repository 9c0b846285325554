"""What a forwarded request carries: the JSON body, and its Standard Webhooks headers. Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from relay.core.events import Payload, Review, Vote, normalize
from relay.core.senders import split


def normalized(event: Payload) -> tuple[str, dict[str, Any]] | None:
    """``("vote", {...})`` or ``("review", {...})``: the relay's sender-neutral `Vote` or `Review`, without
    its ``payload`` (the body carries the original separately, byte for byte)."""
    found = normalize(event)
    if isinstance(found, Vote | Review):
        kind = "vote" if isinstance(found, Vote) else "review"
        return kind, found.model_dump(mode="json", exclude={"payload"})
    return None


def body(*, stored_type: str, entry_id: str, received_ms: int, event: Payload, payload: bytes) -> bytes:
    """The forwarded JSON: the sender's own event type and the sender (``source``), the event's
    normalized ``vote`` or ``review`` (else null), and the original ``payload``, spliced in byte for
    byte (it was stored as valid JSON)."""
    source, event_type = split(stored_type)
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
