"""Where each event stands with each handler, for the admin page's "where is my event?" (relay/admin).

After every run of a handler's job the worker overwrites that handler's field of the hash
``relay:outcome:<entry id>`` with the latest outcome (done, retrying, dead, waiting for a worker
that has the handler), and counts the run in its minute's ``relay:minute:<minute>`` hash for the
overview's chart. Memory stays bounded: an outcome hash expires with its event (the retention), each
field is a small JSON object with a clipped error, and a minute's counters expire after two hours.

Recording is best effort: one pipelined round trip, given at most `RECORD_SECONDS`; a failure is
logged and never fails the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

from arq.utils import timestamp_ms
from arq.worker import Retry
from redis.exceptions import RedisError

from relay.core.keys import minute_redis_key, outcome_redis_key

log = logging.getLogger("worker.outcomes")

State = Literal["done", "retrying", "dead", "waiting", "replayed"]

RECORD_SECONDS = 0.5
MAX_ERROR_CHARS = 300
MINUTE_KEEP_SECONDS = 2 * 3600
"""The overview charts the last hour; an hour more covers clocks a little apart."""

RETRY_KNOWS_ITS_DELAY = getattr(Retry(defer=1), "defer_score", None) == 1000
"""arq's `Retry` keeps its delay in ms as ``defer_score``, undocumented (docs/INTERNALS.md): checked
once at import; without it an outcome says "retrying" without the time."""

# How `worker.jobs` names a run's end, and the state it leaves the handler in.
_STATES: dict[str, State] = {"ok": "done", "retry": "retrying", "dead": "dead", "skipped": "waiting"}
DEAD_NOTE = "dead letter "
"""`worker.jobs` returns ``"dead letter <id>"`` for a run that wrote one."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The latest outcome of one handler's job for one event."""

    state: State
    at_ms: int
    attempt: int = 0
    error: str = ""
    retry_at_ms: int = 0
    dead_id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Outcome | None:
        """Lenient: a field written by another version, or damaged, reads as None."""
        try:
            data = json.loads(raw)
            state = data["state"]
            if state not in (*_STATES.values(), "replayed"):
                return None
            return cls(
                state=state,
                at_ms=int(data.get("at_ms", 0)),
                attempt=int(data.get("attempt", 0)),
                error=str(data.get("error", "")),
                retry_at_ms=int(data.get("retry_at_ms", 0)),
                dead_id=str(data.get("dead_id", "")),
            )
        except (ValueError, TypeError, KeyError):
            return None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def outcome_of(
    run_end: str, *, now_ms: int, attempt: int, note: str | None, retry: BaseException | None
) -> Outcome | None:
    """The outcome a run ending as `run_end` (``ok``, ``retry``, ``dead``, ``skipped``) leaves; None
    for an end that says nothing about the handler (``error``: cancelled, or a bug in the wrapper)."""
    state = _STATES.get(run_end)
    if state is None:
        return None
    error = ""
    retry_at_ms = 0
    if retry is not None:
        cause = retry.__cause__
        if cause is not None:
            error = _clip(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)
        defer_ms = getattr(retry, "defer_score", None) if RETRY_KNOWS_ITS_DELAY else None
        retry_at_ms = now_ms + int(defer_ms) if isinstance(defer_ms, int | float) else 0
    dead_id = note.removeprefix(DEAD_NOTE) if state == "dead" and note else ""
    return Outcome(state, now_ms, attempt, error, retry_at_ms, dead_id)


async def record(
    ctx: dict[str, Any],
    handler: str,
    entry_id: str,
    run_end: str,
    *,
    note: str | None = None,
    retry: BaseException | None = None,
    keep_ms: int,
) -> None:
    """Record how a run of `handler` for `entry_id` ended, and count it in its minute. Never raises."""
    now_ms = timestamp_ms()
    outcome = outcome_of(run_end, now_ms=now_ms, attempt=int(ctx.get("attempt", 0)), note=note, retry=retry)
    if outcome is None:
        return
    key, minute = outcome_redis_key(entry_id), minute_redis_key(now_ms // 60_000)
    try:
        async with asyncio.timeout(RECORD_SECONDS):
            async with ctx["redis"].pipeline(transaction=False) as pipe:
                pipe.hset(key, handler, outcome.to_json())
                pipe.pexpire(key, keep_ms)
                if outcome.state in ("done", "retrying", "dead"):
                    pipe.hincrby(minute, "handled" if outcome.state == "done" else "failed", 1)
                    pipe.expire(minute, MINUTE_KEEP_SECONDS)
                await pipe.execute()
    except (TimeoutError, RedisError, OSError) as exc:
        log.warning("could not record the outcome of %s for %s: %r", handler, entry_id, exc)


async def record_replay(redis: Any, entry_id: str, handler: str, *, dead_id: str, keep_ms: int) -> None:
    """A dead letter of `handler` for `entry_id` was replayed: its job is queued again. Never raises."""
    outcome = Outcome("replayed", timestamp_ms(), dead_id=dead_id)
    key = outcome_redis_key(entry_id)
    try:
        async with asyncio.timeout(RECORD_SECONDS):
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, handler, outcome.to_json())
                pipe.pexpire(key, keep_ms)
                await pipe.execute()
    except (TimeoutError, RedisError, OSError) as exc:
        log.warning("could not record the replay of %s for %s: %r", handler, entry_id, exc)
