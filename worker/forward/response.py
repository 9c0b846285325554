"""What a destination's answer means: delivered, retry after a delay it asked for, retry on the
handler's schedule, or give up. Pure: status, headers and the first bytes of the body in, a verdict out.

    2xx                          delivered
    429, 503 with Retry-After    retry after that many seconds (capped; see `retry_after_wait`)
    429, 503 without, other 5xx  retry on the handler's backoff
    410, any other 4xx, 3xx      dead letter at once (retrying cannot change the answer)
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import Literal

from worker import backoff

BODY_HEAD_BYTES = 300
"""How much of a refusal's body a dead letter or a retry's error keeps."""

Action = Literal["delivered", "retry_after", "retry", "give_up"]


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str = ""
    """For a failure: the status and the start of the body, as the dead letter shows it."""
    delay: float = 0.0
    """For ``retry_after``: seconds until the next attempt."""


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date), or None if unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; one without a zone is not an HTTP date
    return max(0.0, when.timestamp() - now)


def describe(status: int, body_head: bytes) -> str:
    text = body_head[:BODY_HEAD_BYTES].decode(errors="replace").strip()
    return f"HTTP {status}: {text}" if text else f"HTTP {status} (empty body)"


def judge(
    status: int, retry_after_header: str | None, body_head: bytes, *, now: float, cap: float
) -> Verdict:
    """The verdict on one answer; a requested delay is capped at `cap` seconds (the handler's longest wait)."""
    if 200 <= status < 300:
        return Verdict("delivered")
    reason = describe(status, body_head)
    if status in (429, 503):
        delay = retry_after(retry_after_header, now)
        if delay is not None:
            return Verdict("retry_after", reason, min(delay, cap))
        return Verdict("retry", reason)
    if status >= 500:
        return Verdict("retry", reason)
    if 300 <= status < 400:
        return Verdict("give_up", reason + " (a redirect: set RELAY_FORWARD_URL to the final URL)")
    return Verdict("give_up", reason)


def retry_after_wait(asked: float, attempt: int, base: float, cap: float) -> float:
    """The wait before the next attempt when attempt `attempt` was answered ``Retry-After: asked``.

    The longer of `asked` and the shortest backoff of the step before (none after the first attempt),
    capped: the first request for a delay is followed to the second, while a destination that keeps
    asking for a second or two is still tried for over an hour (as a failing handler is), not
    dead-lettered within a minute.
    """
    floor = backoff.ceiling(attempt - 1, base, cap) * (1 - backoff.JITTER) if attempt > 1 else 0.0
    return min(max(asked, floor), cap)
