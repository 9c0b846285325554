"""Dead letters: the (event, handler) pairs that failed for good, kept in ``relay:dead`` for inspection and replay.

A dead letter holds everything needed to understand and re-run the failure: the original entry id
(which stays the handler's ``ctx["event_id"]`` on replay), the event type and raw body, the handler,
the attempts made, the error type, message and a trimmed traceback, and the times of the first and
last failure. It is written before the job is dropped, so a crash in between leaves a duplicate dead
letter, never a lost one.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.typing import EncodableT

from relay.core.keys import DEAD_STREAM, EntryFields, StoredEvent
from worker.enqueue import JobSpec, Settle, enqueue, handler_job_id
from worker.keys import failing_redis_key, skipped_redis_key

# Fields of a `relay:dead` entry. Values are bytes in Redis; times are milliseconds since the epoch.
F_ENTRY_ID = "entry_id"
F_TYPE = "type"
F_BODY = "body"
F_RECEIVED = "received_ms"
F_HANDLER = "handler"
F_ATTEMPTS = "attempts"
F_ERROR_TYPE = "error_type"
F_ERROR = "error"
F_TRACEBACK = "traceback"
F_FIRST_FAILURE = "first_failure_ms"
F_LAST_FAILURE = "last_failure_ms"

MAX_TRACEBACK_CHARS = 4000
"""A traceback longer than this keeps its end, where the error is."""
MAX_MESSAGE_CHARS = 1000

DEAD_SCRIPT = """
local first = redis.call('GET', KEYS[2]) or ARGV[1]
local id = redis.call('XADD', KEYS[1], '*', ARGV[2], first, unpack(ARGV, 3))
redis.call('DEL', KEYS[2], KEYS[3])
return id
"""
"""Append a dead letter whose first failure time comes from the job's ``relay:failing:`` key (or is
now), and forget that key and the job's ``relay:skipped:`` count. KEYS: `DEAD_STREAM`, the failing
key, the skipped key. ARGV: now ms, the first-failure field name, then the other fields and values."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed, as a dead letter records it."""

    error_type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, message: str | None = None) -> Failure:
        text = message if message is not None else str(exc)
        return cls(type(exc).__name__, _clip(text, MAX_MESSAGE_CHARS), trimmed_traceback(exc))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trimmed_traceback(exc: BaseException, limit: int = MAX_TRACEBACK_CHARS) -> str:
    """The formatted traceback of `exc` (with its causes), cut to its last `limit` characters."""
    text = "".join(traceback.format_exception(exc))
    if len(text) <= limit:
        return text
    return "… (traceback trimmed)\n" + text[-limit:]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of ``relay:dead``."""

    id: str
    entry_id: str
    type: str
    body: bytes
    received_ms: int
    handler: str
    attempts: int
    error_type: str
    error: str
    traceback: str
    first_failure_ms: int
    last_failure_ms: int

    @classmethod
    def from_entry(cls, dead_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
        read = EntryFields(fields)
        text, number = read.text, read.number
        return cls(
            id=dead_id.decode() if isinstance(dead_id, bytes) else dead_id,
            entry_id=text(F_ENTRY_ID),
            type=text(F_TYPE),
            body=read.raw(F_BODY),
            received_ms=number(F_RECEIVED),
            handler=text(F_HANDLER),
            attempts=number(F_ATTEMPTS),
            error_type=text(F_ERROR_TYPE),
            error=text(F_ERROR),
            traceback=text(F_TRACEBACK),
            first_failure_ms=number(F_FIRST_FAILURE),
            last_failure_ms=number(F_LAST_FAILURE),
        )

    def event(self) -> StoredEvent:
        """The original stream entry, as the bridge read it."""
        return StoredEvent(self.entry_id, self.type, self.body, self.received_ms, dedupe="")


async def write(
    redis: Redis,
    event: StoredEvent,
    *,
    handler: str,
    attempts: int,
    failure: Failure,
    now_ms: int,
    job_id: str | None = None,
) -> str:
    """Append a dead letter for (`event`, `handler`) and return its id in ``relay:dead``.

    The first failure time is the one recorded by `record_failure` for `job_id`, or now.
    """
    job_id = job_id or handler_job_id(event.entry_id, handler)
    fields: list[EncodableT] = [
        F_ENTRY_ID, event.entry_id,
        F_TYPE, event.type,
        F_BODY, event.body,
        F_RECEIVED, event.received_ms,
        F_HANDLER, handler,
        F_ATTEMPTS, attempts,
        F_ERROR_TYPE, failure.error_type,
        F_ERROR, failure.message,
        F_TRACEBACK, failure.traceback,
        F_LAST_FAILURE, now_ms,
    ]  # fmt: skip
    keys = [DEAD_STREAM, failing_redis_key(job_id), skipped_redis_key(job_id)]
    args: list[EncodableT] = [now_ms, F_FIRST_FAILURE, *fields]
    dead_id = await redis.register_script(DEAD_SCRIPT)(keys, args)
    return dead_id.decode() if isinstance(dead_id, bytes) else str(dead_id)


async def record_failure(redis: Redis, job_id: str, *, now_ms: int, keep_ms: int) -> None:
    """Remember when `job_id` first failed (later failures keep the first time)."""
    await redis.set(failing_redis_key(job_id), now_ms, nx=True, px=keep_ms)


async def forget_failures(redis: Redis, job_id: str) -> None:
    """The job succeeded after failing or being skipped: drop its first-failure time and skip count."""
    await redis.delete(failing_redis_key(job_id), skipped_redis_key(job_id))


async def record_skip(redis: Redis, job_id: str, *, keep_ms: int) -> int:
    """Count one run of `job_id` on a worker without its handler; returns the runs skipped so far."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(skipped_redis_key(job_id))
        pipe.pexpire(skipped_redis_key(job_id), keep_ms)
        skipped, _ = await pipe.execute()
    return int(skipped)


async def skipped_runs(redis: Redis, job_id: str) -> int:
    """How many runs of `job_id` were skipped by workers without its handler (they are not attempts)."""
    return int(await redis.get(skipped_redis_key(job_id)) or 0)


async def list_dead(redis: Redis, *, start: str = "-", end: str = "+", count: int = 100) -> list[DeadLetter]:
    """Dead letters from oldest to newest, at most `count`, between ids `start` and `end` (inclusive)."""
    entries = await redis.xrange(DEAD_STREAM, min=start, max=end, count=count)
    return [DeadLetter.from_entry(dead_id, fields) for dead_id, fields in entries]


async def get_dead(redis: Redis, dead_id: str) -> DeadLetter | None:
    """One dead letter by its id in ``relay:dead``, or None."""
    entries = await redis.xrange(DEAD_STREAM, min=dead_id, max=dead_id, count=1)
    return DeadLetter.from_entry(*entries[0]) if entries else None


def replay_job_id(letter: DeadLetter) -> str:
    """A job id of its own for a replay, so it never collides with the original job or its result."""
    return f"{handler_job_id(letter.entry_id, letter.handler)}:replay:{letter.id}"


async def replay(redis: Redis, letter: DeadLetter, *, now_ms: int, expires_ms: int) -> bool:
    """Enqueue `letter`'s handler again for its event, and delete the dead letter in the same step.

    The handler sees the original ``ctx["event_id"]`` and a fresh attempt count. Returns False if the
    replay job already existed (replayed twice); the dead letter is deleted either way.
    """
    if not letter.handler:
        raise ValueError(f"dead letter {letter.id} names no handler and cannot be replayed")
    job = JobSpec.for_event(letter.event(), letter.handler, job_id=replay_job_id(letter))
    settle = Settle("XDEL", DEAD_STREAM, [letter.id])
    return await enqueue(redis, [job], now_ms=now_ms, expires_ms=expires_ms, settle=settle) == 1
