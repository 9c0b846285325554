"""The edge's records of refused requests (`relay.edge.rejections`) as the operator tools show them."""

from __future__ import annotations

from typing import Any

from relay.edge.rejections import Rejection

HINTS = {
    "invalid_signature": "signed with another secret? compare RELAY_SECRET with your listing's key",
    "invalid_body": "not a JSON object",
    "invalid_event": "a known event type with invalid fields",
    "body_too_large": "over RELAY_MAX_BODY_BYTES",
    "body_timeout": "the body arrived slower than RELAY_BODY_TIMEOUT",
    "forbidden_source": "the address is not in RELAY_ALLOWED_SOURCES",
}


def shown_body(head: bytes) -> str:
    """The body's first bytes as one printable line: text as is, anything else escaped."""
    text = head.decode(errors="backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def to_dict(rejection: Rejection) -> dict[str, Any]:
    return {
        "id": rejection.id,
        "received_ms": rejection.received_ms,
        "status": rejection.status,
        "reason": rejection.reason,
        "size": rejection.size,
        "client": rejection.client,
        "headers": [list(pair) for pair in rejection.headers],
        "body_head": rejection.body_head.decode(errors="replace"),
        "skipped_before": rejection.skipped,
    }
