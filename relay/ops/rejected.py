"""The edge's records of refused requests (`relay.edge.rejections`) as the operator tools show them."""

from __future__ import annotations

from typing import Any

from relay.edge.rejections import Rejection

HINTS = {
    "invalid_signature": "signed with another secret? compare RELAY_SECRET with your listing's key",
    "invalid_signature topgg": "compare RELAY_TOPGG_SECRET (whs_...) or RELAY_TOPGG_AUTHORIZATION with top.gg's",
    "invalid_signature standard": "compare RELAY_STANDARD_WEBHOOKS_SECRET with the sender's whsec_... secret",
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
        "source": rejection.source,
        "received_ms": rejection.received_ms,
        "status": rejection.status,
        "reason": rejection.reason,
        "size": rejection.size,
        "client": rejection.client,
        "headers": [list(pair) for pair in rejection.headers],
        "body_head": rejection.body_head.decode(errors="replace"),
        "skipped_before": rejection.skipped,
    }


def hint(rejection: Rejection) -> str | None:
    """What to check, by the refusal's code (a signature refusal: by its sender too)."""
    code = rejection.reason.partition(":")[0]
    return HINTS.get(f"{code} {rejection.source}") or HINTS.get(code)
