"""The arq job that runs one handler for one event, and decides what a failure means.

One arq function per handler, named after it. Each attempt:

1. If arq's try counter is past ``max_attempts``, earlier attempts never finished (their worker died,
   e.g. a handler that crashes the process): the event is dead-lettered as ``WorkerDied`` and the
   handler is not run again. This is what stops a poison pill.
2. The stored raw body is parsed into the event model (the base `Event` for unknown types).
3. The handler runs under its ``timeout``; a plain ``def`` runs in a thread.
4. Success ends the job. `Permanent` dead-letters at once. Any other exception or a timeout is a
   failed attempt: arq re-runs the job after a backoff (`arq.Retry`), and the last allowed attempt
   dead-letters instead.

arq's own limits never end a job: its ``max_tries`` is set far above ``max_attempts`` and its timeout
leaves the wrapper a margin to write the dead letter, so every job ends in success or a dead letter.
If writing the dead letter fails, the job stays queued and the next run writes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq.utils import timestamp_ms
from arq.worker import Function, Retry, func
from redis.exceptions import RedisError

from relay.events import InvalidBody, InvalidEvent, parse
from relay.settings import Settings
from relay.streams import StoredEvent
from worker import backoff, deadletter
from worker.deadletter import Failure
from worker.errors import WORKER_DIED, Permanent
from worker.registry import Handler

log = logging.getLogger("worker.jobs")

MARGIN_SECONDS = 2.0
"""arq's timeout for a job is the handler's timeout plus this, so the wrapper, not arq, handles a
timeout. A crashed attempt is re-run once arq's in-progress key expires: after the largest
``timeout`` + this margin + arq's 10 s."""

BOOKKEEPING_SECONDS = 1.0
"""How long recording a failure or a dead letter may take before the job is left for its next run."""

ARQ_MAX_TRIES = 1_000_000
"""Far above any ``max_attempts``: the wrapper decides when a job ends, never arq's retry limit."""

UNRECORDED_RETRY_SECONDS = 5.0
"""Delay before the next run when a dead letter could not be written."""


def keep_result_seconds(settings: Settings) -> float:
    """How long arq keeps a finished job's result, and so refuses the same job id again.

    An entry is re-moved only when its reader died before acknowledging it, and another worker claims
    it after ``claim_idle_seconds``; keeping results well past that turns such a re-move into no job
    instead of a second run.
    """
    return max(600.0, 4 * settings.claim_idle_seconds)


def arq_function(handler: Handler, settings: Settings) -> Function:
    """The arq function running `handler`, named after it, with its timeout and retry settings."""

    async def run(
        ctx: dict[str, Any], entry_id: str, event_type: str, body: bytes, received_ms: int
    ) -> str | None:
        event = StoredEvent(entry_id, event_type, bytes(body), received_ms, dedupe="")
        return await run_attempt(handler, settings, ctx, event)

    run.__qualname__ = run.__name__ = handler.name
    return func(
        run,
        name=handler.name,
        timeout=handler.timeout + MARGIN_SECONDS,
        max_tries=ARQ_MAX_TRIES,
        keep_result=keep_result_seconds(settings),
    )


def _log_fields(event: StoredEvent, handler: Handler, attempt: int) -> dict[str, object]:
    return {"entry_id": event.entry_id, "event_type": event.type, "handler": handler.name, "attempt": attempt}


async def run_attempt(
    handler: Handler, settings: Settings, ctx: dict[str, Any], event: StoredEvent
) -> str | None:
    """Run one attempt of `handler` for `event`; raise `arq.Retry` to be run again later.

    Returns None on success, or a short note naming the dead letter written.
    """
    attempt = int(ctx["job_try"])
    ctx.update(
        event_id=event.entry_id,
        attempt=attempt,
        handler=handler.name,
        event_type=event.type,
        received_ms=event.received_ms,
        settings=settings,
    )
    extra = _log_fields(event, handler, attempt)

    if attempt > handler.max_attempts:
        died = Failure(
            WORKER_DIED,
            f"attempt {attempt - 1} of {handler.max_attempts} never finished: the worker running it died "
            "(killed, out of memory, os._exit), was stopped mid-run, or lost Redis before recording the outcome",
        )
        return await _dead_letter(ctx, event, handler, attempt - 1, died, extra)

    try:
        model = parse(event.body)
    except (InvalidBody, InvalidEvent) as exc:  # retrying cannot fix the body; a replay after a fix can
        return await _dead_letter(ctx, event, handler, attempt, Failure.from_exception(exc), extra)

    try:
        async with asyncio.timeout(handler.timeout) as deadline:
            if handler.is_async:
                await handler.func(ctx, model)
            else:
                # The thread cannot be stopped: on timeout it runs on while the attempt counts as failed.
                await asyncio.to_thread(handler.func, ctx, model)
    except Permanent as exc:
        return await _dead_letter(ctx, event, handler, attempt, Failure.from_exception(exc), extra)
    except Exception as exc:
        message = f"ran longer than its timeout of {handler.timeout:g}s" if deadline.expired() else None
        failure = Failure.from_exception(exc, message)
        if attempt >= handler.max_attempts:
            return await _dead_letter(ctx, event, handler, attempt, failure, extra)
        wait = backoff.delay(attempt, handler.backoff)
        log.warning(
            "%s failed on %s (attempt %d of %d), retrying in %.2fs: %s: %s",
            handler.name, event.entry_id, attempt, handler.max_attempts, wait,
            failure.error_type, failure.message, extra=extra,
        )  # fmt: skip
        await _note_failure(ctx, settings, extra)
        raise Retry(defer=wait) from exc

    if attempt > 1:
        await _forget_failures(ctx, extra)
    return None


async def _note_failure(ctx: dict[str, Any], settings: Settings, extra: dict[str, object]) -> None:
    try:
        async with asyncio.timeout(BOOKKEEPING_SECONDS):
            await deadletter.record_failure(
                ctx["redis"], ctx["job_id"], now_ms=timestamp_ms(), keep_ms=settings.retention_seconds * 1000
            )
    except (TimeoutError, RedisError, OSError) as exc:
        # Only the dead letter's "first failure" time suffers; the retry itself goes ahead.
        log.warning("could not record the first failure time: %r", exc, extra=extra)


async def _forget_failures(ctx: dict[str, Any], extra: dict[str, object]) -> None:
    try:
        async with asyncio.timeout(BOOKKEEPING_SECONDS):
            await deadletter.forget_failures(ctx["redis"], ctx["job_id"])
    except (TimeoutError, RedisError, OSError) as exc:
        log.warning("could not clear the failure record (it expires on its own): %r", exc, extra=extra)


async def _dead_letter(
    ctx: dict[str, Any],
    event: StoredEvent,
    handler: Handler,
    attempts: int,
    failure: Failure,
    extra: dict[str, object],
) -> str:
    try:
        async with asyncio.timeout(BOOKKEEPING_SECONDS):
            dead_id = await deadletter.write(
                ctx["redis"],
                event,
                handler=handler.name,
                attempts=attempts,
                failure=failure,
                now_ms=timestamp_ms(),
                job_id=ctx["job_id"],
            )
    except (TimeoutError, RedisError, OSError) as exc:
        # Dropping the job now would lose the event: keep it queued; its next run writes the dead letter.
        log.error("could not write the dead letter, the job stays queued: %r", exc, extra=extra)
        raise Retry(defer=UNRECORDED_RETRY_SECONDS) from exc
    log.error(
        "%s gave up on %s after %d attempt(s): %s: %s (dead letter %s)",
        handler.name, event.entry_id, attempts, failure.error_type, failure.message, dead_id, extra=extra,
    )  # fmt: skip
    return f"dead letter {dead_id}"
