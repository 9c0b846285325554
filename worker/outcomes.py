"""Where each event stands with each handler, for the admin page's "where is my event?" (relay/admin).

After every run of a handler's job the worker overwrites that handler's field of the hash
``relay:outcome:<entry id>`` with the latest outcome (done, retrying, dead, waiting for a worker
that has the handler), counts the run in its minute's ``relay:minute:<minute>`` hash for the
overview's chart, and counts a run that ended done in ``relay:handled`` (per handler, in all). Memory
stays bounded: an outcome hash expires with its event (the retention), each field is a small JSON
object with a clipped error, a minute's counters expire after two hours, and ``relay:handled`` has a
field per handler.

Recording costs a run an append: a worker's outcomes are written together every `FLUSH_SECONDS`
(`OutcomeBuffer`), each batch in one script call given at most `RECORD_SECONDS`. It is best effort: a
failure is logged and never fails a job; a worker killed with -9 loses at most its last fraction of
a second of outcomes (the page then says "queued" for runs that ended).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from arq.utils import timestamp_ms
from arq.worker import Retry
from redis.exceptions import RedisError
from redis.typing import EncodableT

from relay.core.keys import HANDLED_TOTALS, minute_redis_key, outcome_redis_key

log = logging.getLogger("worker.outcomes")

State = Literal["done", "retrying", "dead", "waiting", "replayed"]

RECORD_SECONDS = 0.5
MAX_ERROR_CHARS = 300
MINUTE_KEEP_SECONDS = 2 * 3600
"""The overview charts the last hour; an hour more covers clocks a little apart."""

RETRY_KNOWS_ITS_DELAY = getattr(Retry(defer=1), "defer_score", None) == 1000
"""arq's `Retry` keeps its delay in ms as ``defer_score``, undocumented (docs/INTERNALS.md): checked
once at import; without it an outcome says "retrying" without the time."""

RECORD_SCRIPT = """
for i = 1, #KEYS / 3 do
  local a = (i - 1) * 5
  redis.call('HSET', KEYS[3 * i - 2], ARGV[a + 1], ARGV[a + 2])
  redis.call('PEXPIRE', KEYS[3 * i - 2], ARGV[a + 3])
  if ARGV[a + 4] ~= '' then
    redis.call('HINCRBY', KEYS[3 * i - 1], ARGV[a + 4], 1)
    redis.call('EXPIRE', KEYS[3 * i - 1], ARGV[a + 5])
  end
  if ARGV[a + 4] == 'handled' then
    redis.call('HINCRBY', KEYS[3 * i], ARGV[a + 1], 1)
  end
end
"""
"""Write a batch of outcomes. KEYS: per outcome, its hash, its minute's hash and `HANDLED_TOTALS`.
ARGV: per outcome, the handler, the outcome JSON, keep ms, the minute's field (``handled``,
``failed`` or empty), the minute's expiry in seconds."""

FLUSH_SECONDS = 0.1
"""Outcomes are written this long after the first of a batch: the page lags the workers by as much."""
MAX_BATCH = 500
MAX_BUFFERED = 20_000
"""Outcomes waiting at most (Redis slow or away); past it the oldest are dropped, and logged."""

Record = tuple[list[str], list[EncodableT]]


class OutcomeBuffer:
    """Gathers a worker's outcomes and writes them every `FLUSH_SECONDS` in one script call.

    A Redis call per run would weigh on a worker next to arq's own work for a short job; batched, a
    run costs an append. The flusher task lives only while outcomes wait; the worker's shutdown
    flushes (`flush`), and a flusher cancelled at the loop's end still writes what it holds.
    """

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.waiting: deque[Record] = deque()
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def add(self, record: Record) -> None:
        if len(self.waiting) >= MAX_BUFFERED:
            self.waiting.popleft()
            self.dropped += 1
        self.waiting.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(FLUSH_SECONDS)
        except asyncio.CancelledError:  # the worker is stopping: these are its last outcomes
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # else redis-py's calls below would be cancelled too
            await self.flush()
            raise
        await self.flush()

    async def flush(self) -> None:
        """Write every waiting outcome now. Never raises: a failed batch is logged and dropped."""
        while self.waiting:
            batch = [self.waiting.popleft() for _ in range(min(MAX_BATCH, len(self.waiting)))]
            keys = [key for k, _ in batch for key in k]
            args = [arg for _, a in batch for arg in a]
            try:
                async with asyncio.timeout(RECORD_SECONDS):
                    await self.redis.register_script(RECORD_SCRIPT)(keys, args)
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("could not record %d handler outcome(s) for the admin page: %r", len(batch), exc)
        if self.dropped:
            log.warning("dropped %d handler outcome(s): Redis did not take them in time", self.dropped)
            self.dropped = 0


_buffers: weakref.WeakKeyDictionary[Any, OutcomeBuffer] = weakref.WeakKeyDictionary()


def _buffer(redis: Any) -> OutcomeBuffer:
    found = _buffers.get(redis)
    if found is None:
        found = _buffers[redis] = OutcomeBuffer(redis)
    return found


async def flush(redis: Any) -> None:
    """Write the outcomes waiting for `redis` now: the worker's ``on_shutdown`` calls it."""
    buffer = _buffers.get(redis) if redis is not None else None
    if buffer is not None:
        await buffer.flush()


def _record(redis: Any, entry_id: str, handler: str, outcome: Outcome, keep_ms: int) -> None:
    counted = {"done": "handled", "retrying": "failed", "dead": "failed"}.get(outcome.state, "")
    keys = [outcome_redis_key(entry_id), minute_redis_key(outcome.at_ms // 60_000), HANDLED_TOTALS]
    _buffer(redis).add((keys, [handler, outcome.to_json(), keep_ms, counted, MINUTE_KEEP_SECONDS]))


# How `worker.jobs` names a run's end, and the state it leaves the handler in.
_STATES: dict[str, State] = {"ok": "done", "retry": "retrying", "dead": "dead", "skipped": "waiting"}


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
        fields = {
            "state": self.state,
            "at_ms": self.at_ms,
            "attempt": self.attempt,
            "error": self.error,
            "retry_at_ms": self.retry_at_ms,
            "dead_id": self.dead_id,
        }
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)

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
    run_end: str, *, now_ms: int, attempt: int, dead_id: str = "", retry: BaseException | None
) -> Outcome | None:
    """The outcome a run ending as `run_end` (``ok``, ``retry``, ``dead`` with the dead letter's id,
    ``skipped``) leaves; None for an end that says nothing about the handler (``error``: cancelled, or
    a bug in the wrapper)."""
    state = _STATES.get(run_end)
    if state is None:
        return None
    error = ""
    retry_at_ms = 0
    if retry is not None:
        cause = retry.__cause__
        while isinstance(cause, Retry) and cause.__cause__ is not None:  # a handler's Retry, from its reason
            cause = cause.__cause__
        if cause is not None:
            error = _clip(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)
        defer_ms = getattr(retry, "defer_score", None) if RETRY_KNOWS_ITS_DELAY else None
        retry_at_ms = now_ms + int(defer_ms) if isinstance(defer_ms, int | float) else 0
    return Outcome(state, now_ms, attempt, error, retry_at_ms, dead_id if state == "dead" else "")


async def record(
    ctx: dict[str, Any],
    handler: str,
    entry_id: str,
    run_end: str,
    *,
    dead_id: str = "",
    retry: BaseException | None = None,
    keep_ms: int,
) -> None:
    """Record how a run of `handler` for `entry_id` ended, and count it in its minute. Never raises."""
    now_ms = timestamp_ms()
    attempt = int(ctx.get("attempt", 0))
    outcome = outcome_of(run_end, now_ms=now_ms, attempt=attempt, dead_id=dead_id, retry=retry)
    if outcome is None:
        return
    _record(ctx["redis"], entry_id, handler, outcome, keep_ms)


async def record_replay(redis: Any, entry_id: str, handler: str, *, dead_id: str, keep_ms: int) -> None:
    """A dead letter of `handler` for `entry_id` was replayed: its job is queued again. Never raises."""
    _record(redis, entry_id, handler, Outcome("replayed", timestamp_ms(), dead_id=dead_id), keep_ms)
    await _buffer(redis).flush()  # the page that follows a replay shows it
