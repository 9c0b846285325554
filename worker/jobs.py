"""The arq job that runs one handler for one event, and decides what a failure means.

Every handler job calls one arq function, `RUN_HANDLER`, with the handler's name as its first
argument; a run skips a handler this worker lacks, dead-letters a poison pill, parses the event,
runs the handler under its timeout, and retries or dead-letters a failure. Why it is built this way:
docs/INTERNALS.md, "worker/jobs.py".
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from arq.utils import timestamp_ms
from arq.worker import Function, Retry, func
from redis.exceptions import RedisError

from relay.core.events import InvalidBody, InvalidEvent, Payload, Review, Vote, normalize
from relay.core.keys import StoredEvent
from relay.core.senders import parse_stored
from relay.core.settings import Settings
from worker import backoff, deadletter, outcomes
from worker.deadletter import Failure
from worker.enqueue import RUN_HANDLER
from worker.errors import UNKNOWN_HANDLER, WORKER_DIED, NotAwaited, Permanent
from worker.heartbeat import InFlight
from worker.later import Later
from worker.metrics import WorkerMetrics
from worker.once import Once
from worker.registry import Handler, Registry
from worker.slots import SLOT_WAIT_SECONDS, NoSlot, Slots
from worker.slots import defer_seconds as slot_defer_seconds

log = logging.getLogger("worker.jobs")

MARGIN_SECONDS = 2.0
"""arq's timeout for a job is the largest handler timeout plus this, so the wrapper, not arq, handles
a timeout. A crashed attempt is re-run once arq's in-progress key expires: after the largest
``timeout`` + this margin + arq's 10 s."""

BOOKKEEPING_SECONDS = 1.0
"""How long recording a failure or a dead letter may take before the job is left for its next run."""

ARQ_MAX_TRIES = 1_000_000
"""Far above any ``max_attempts``: the wrapper decides when a job ends, never arq's retry limit."""

UNRECORDED_RETRY_SECONDS = 5.0
"""Delay before the next run when Redis failed the wrapper's own bookkeeping (e.g. a dead letter)."""

UNKNOWN_HANDLER_TRIES = 20
"""Runs skipped for want of the handler before the event is dead-lettered as ``UnknownHandler``."""

UNKNOWN_HANDLER_BACKOFF = 1.0
"""Base seconds of the (capped, doubling) wait after each skipped run: with the defaults, the job
keeps coming back for about a quarter of an hour, long enough for a rolling deploy to finish."""

UNKNOWN_HANDLER_MAX_DEFER = 60.0


def handed_to(handler: Handler, payload: Payload) -> Payload | Vote | Review:
    """What `handler` receives: the normalized `Vote`/`Review` if it asked for one, else the sender's model."""
    if handler.normalized:
        normalized = normalize(payload)
        if normalized is not None:
            return normalized
    return payload


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """How a run ended its job when it wrote a dead letter (a run that succeeded returns None)."""

    dead_id: str
    """The dead letter's id in ``relay:dead``."""


def keep_result_seconds(settings: Settings) -> float:
    """How long arq keeps a finished job's result, and so refuses the same job id again.

    An entry is re-moved only when its reader died before acknowledging it, and another worker claims
    it after ``claim_idle_seconds``; keeping results well past that turns such a re-move into no job
    instead of a second run.
    """
    return max(600.0, 4 * settings.claim_idle_seconds)


def job_timeout(registry: Registry) -> float:
    """arq's timeout for every job: the largest handler timeout plus `MARGIN_SECONDS` (plus the wait
    for a slot when a handler has a ``concurrency`` limit)."""
    wait = SLOT_WAIT_SECONDS if any(handler.concurrency for handler in registry) else 0.0
    return max(handler.timeout for handler in registry) + MARGIN_SECONDS + wait


def arq_function(
    registry: Registry,
    settings: Settings,
    *,
    unknown_tries: int = UNKNOWN_HANDLER_TRIES,
    unknown_backoff: float = UNKNOWN_HANDLER_BACKOFF,
    metrics: WorkerMetrics | None = None,
    in_flight: InFlight | None = None,
) -> Function:
    """The one arq function, `RUN_HANDLER`, running whichever of `registry`'s handlers a job names.

    A job naming a handler `registry` lacks is skipped and deferred (`skip_unknown`), `unknown_tries`
    times with a doubling wait from `unknown_backoff` seconds, then dead-lettered. Every run is
    counted in `metrics`, and a successful one logged (in place of arq's own lines about jobs, which
    `worker.main.ArqLines` drops: they carry no fields).
    """
    counted = metrics if metrics is not None else WorkerMetrics(h.name for h in registry)
    slots = Slots(registry)
    tracked = in_flight if in_flight is not None else InFlight()  # the heartbeat shows what runs

    async def run_handler(
        ctx: dict[str, Any], handler: str, entry_id: str, event_type: str, body: bytes, received_ms: int
    ) -> str | None:
        event = StoredEvent(entry_id, event_type, bytes(body), received_ms, dedupe="")
        found = registry.get(handler)
        started = time.perf_counter()
        outcome = "error"  # unless the run ends one of the ways below: a bug, or arq cancelled it
        dead: DeadLettered | None = None
        retried: Retry | None = None
        try:
            with tracked.track(handler, entry_id):
                dead = await _run(found, handler, ctx, event)
            outcome = "ok" if dead is None else "dead"
            return None if dead is None else f"dead letter {dead.dead_id}"  # what arq keeps as the result
        except Retry as retry:
            outcome = "retry" if found is not None and not isinstance(retry, SlotDeferred) else "skipped"
            retried = retry
            raise
        finally:
            seconds = time.perf_counter() - started
            counted.ran(handler, outcome, seconds)
            if outcome != "error":  # for the admin page (worker/outcomes.py); bounded, never raises
                dead_id = dead.dead_id if dead is not None else ""
                await outcomes.record(
                    ctx,
                    handler,
                    entry_id,
                    outcome,
                    dead_id=dead_id,
                    retry=retried,
                    keep_ms=settings.retention_ms,
                )
            if outcome == "ok":
                fields = _log_fields(event, handler, int(ctx.get("attempt", 0)))
                log.info(
                    "%s handled %s",
                    handler,
                    entry_id,
                    extra={**fields, "outcome": outcome, "ms": round(seconds * 1000, 2)},
                )

    async def _run(
        found: Handler | None, handler: str, ctx: dict[str, Any], event: StoredEvent
    ) -> DeadLettered | None:
        if found is None:
            return await skip_unknown(
                handler,
                settings,
                ctx,
                event,
                tries=unknown_tries,
                backoff_base=unknown_backoff,
                metrics=counted,
            )
        try:
            async with slots.hold(found):
                return await run_attempt(found, settings, ctx, event, metrics=counted, registry=registry)
        except NoSlot:
            return await skip_for_slot(handler, settings, ctx, event)

    return func(
        run_handler,
        name=RUN_HANDLER,
        timeout=job_timeout(registry),
        max_tries=ARQ_MAX_TRIES,
        keep_result=keep_result_seconds(settings),
    )


def _log_fields(event: StoredEvent, handler: str, attempt: int) -> dict[str, object]:
    return {"entry_id": event.entry_id, "event_type": event.type, "handler": handler, "attempt": attempt}


@asynccontextmanager
async def _bookkeeping(
    what: str, extra: dict[str, object], *, required: bool = True, level: int = logging.WARNING
) -> AsyncIterator[None]:
    """Bound the job's own Redis bookkeeping inside by `BOOKKEEPING_SECONDS`. When it fails, log that
    the job could not `what`; `required` bookkeeping then leaves the job queued for a later run
    (`arq.Retry`), any other is done without."""
    try:
        async with asyncio.timeout(BOOKKEEPING_SECONDS):
            yield
    except (TimeoutError, RedisError, OSError) as exc:
        if not required:
            log.warning("could not %s: %r", what, exc, extra=extra)
            return
        log.log(level, "could not %s, the job stays queued: %r", what, exc, extra=extra)
        raise Retry(defer=UNRECORDED_RETRY_SECONDS) from exc


async def skip_unknown(
    name: str,
    settings: Settings,
    ctx: dict[str, Any],
    event: StoredEvent,
    *,
    tries: int = UNKNOWN_HANDLER_TRIES,
    backoff_base: float = UNKNOWN_HANDLER_BACKOFF,
    metrics: WorkerMetrics | None = None,
) -> DeadLettered:
    """A run of a job for handler `name`, which this worker lacks: defer it, or dead-letter it.

    Raises `arq.Retry` (another worker may have the handler) until the job was skipped `tries` times,
    then writes an ``UnknownHandler`` dead letter. Never drops the job.
    """
    job_try = int(ctx["job_try"])
    extra = _log_fields(event, name, 0)
    async with _bookkeeping("count a run skipped for want of its handler", extra):
        skipped = await deadletter.record_skip(ctx["redis"], ctx["job_id"], keep_ms=settings.retention_ms)
    if skipped < tries:
        wait = backoff.ceiling(skipped, backoff_base, cap=UNKNOWN_HANDLER_MAX_DEFER)
        log.warning(
            "no handler named %r in this worker (another version may have it): job %s deferred %.1fs (%d of %d)",
            name, ctx["job_id"], wait, skipped, tries, extra=extra,
        )  # fmt: skip
        raise Retry(defer=wait)
    failure = Failure(
        UNKNOWN_HANDLER,
        f"no worker that took this job has a handler named {name!r} ({skipped} tries); "
        "deploy it, then replay this dead letter",
    )
    # Attempts: runs on a worker that had the handler (usually none) and did not end the job.
    return await _dead_letter(ctx, event, name, job_try - skipped, failure, extra, "unknown_handler", metrics)


class SlotDeferred(Retry):
    """A run deferred because every slot of its handler was taken: skipped, not an attempt."""


async def skip_for_slot(name: str, settings: Settings, ctx: dict[str, Any], event: StoredEvent) -> NoReturn:
    """Every slot of handler `name` is busy in this process: defer the run, counted as skipped."""
    async with _bookkeeping("count a run deferred for want of a slot", _log_fields(event, name, 0)):
        await deadletter.record_skip(ctx["redis"], ctx["job_id"], keep_ms=settings.retention_ms)
    raise SlotDeferred(defer=slot_defer_seconds())


async def run_attempt(
    handler: Handler,
    settings: Settings,
    ctx: dict[str, Any],
    event: StoredEvent,
    *,
    metrics: WorkerMetrics | None = None,
    registry: Registry | None = None,
) -> DeadLettered | None:
    """Run one attempt of `handler` for `event`; raise `arq.Retry` to be run again later.

    `registry` (default: `handler` alone) is what ``ctx["later"]`` may schedule.

    Returns None on success, or the dead letter written.
    """
    job_try = int(ctx["job_try"])
    attempt = job_try
    if job_try > 1:  # a first run cannot follow a skipped one: no Redis call on the usual path
        async with _bookkeeping(
            "read the runs skipped for want of the handler", _log_fields(event, handler.name, job_try)
        ):
            attempt -= await deadletter.skipped_runs(ctx["redis"], ctx["job_id"])
    ctx.update(
        event_id=event.entry_id,
        attempt=attempt,
        handler=handler.name,
        event_type=event.type,
        received_ms=event.received_ms,
        body=event.body,
        settings=settings,
        once=Once(ctx["redis"], event.entry_id, handler.name, keep_ms=settings.retention_ms),
        later=Later(ctx["redis"], registry or _alone(handler), event, settings.retention_ms),
    )
    extra = _log_fields(event, handler.name, attempt)

    if attempt > handler.max_attempts:
        died = Failure(
            WORKER_DIED,
            f"attempt {attempt - 1} of {handler.max_attempts} never finished: the worker running it died "
            "(killed, out of memory, os._exit), was stopped mid-run, or lost Redis before recording the outcome",
        )
        return await _dead_letter(ctx, event, handler.name, attempt - 1, died, extra, "worker_died", metrics)

    try:
        model = handed_to(handler, parse_stored(event.type, event.body))
    except (InvalidBody, InvalidEvent) as exc:  # retrying cannot fix the body; a replay after a fix can
        failure = Failure.from_exception(exc)
        return await _dead_letter(ctx, event, handler.name, attempt, failure, extra, "invalid_event", metrics)

    try:
        async with asyncio.timeout(handler.timeout) as deadline:
            if handler.is_async:
                result = await handler.func(ctx, model)
            else:
                # The thread cannot be stopped: on timeout it runs on while the attempt counts as failed.
                result = await asyncio.to_thread(handler.func, ctx, model)
            refuse_awaitable(handler, result)
    except Permanent as exc:
        failure = Failure.from_exception(exc)
        return await _dead_letter(ctx, event, handler.name, attempt, failure, extra, "permanent", metrics)
    except Retry as exc:  # arq's own way to ask for a retry: after the delay the handler chose
        wait = (exc.defer_score or 0) / 1000
        reason = f": {type(exc.__cause__).__name__}: {exc.__cause__}" if exc.__cause__ is not None else ""
        if attempt >= handler.max_attempts:
            failure = Failure(
                "Retry",
                f"asked to retry in {wait:g}s on its last attempt ({attempt} of {handler.max_attempts}){reason}",
            )
            return await _dead_letter(ctx, event, handler.name, attempt, failure, extra, "exhausted", metrics)
        log.warning(
            "%s asked to retry %s (attempt %d of %d) in %.2fs%s",
            handler.name, event.entry_id, attempt, handler.max_attempts, wait, reason, extra=extra,
        )  # fmt: skip
        await _note_failure(ctx, settings, extra)
        raise Retry(defer=wait) from exc
    except Exception as exc:
        message = f"ran longer than its timeout of {handler.timeout:g}s" if deadline.expired() else None
        failure = Failure.from_exception(exc, message)
        if attempt >= handler.max_attempts:
            return await _dead_letter(ctx, event, handler.name, attempt, failure, extra, "exhausted", metrics)
        wait = backoff.delay(attempt, handler.backoff, cap=handler.max_backoff)
        log.warning(
            "%s failed on %s (attempt %d of %d), retrying in %.2fs: %s: %s",
            handler.name, event.entry_id, attempt, handler.max_attempts, wait,
            failure.error_type, failure.message, extra=extra,
        )  # fmt: skip
        await _note_failure(ctx, settings, extra)
        raise Retry(defer=wait) from exc

    if job_try > 1:
        async with _bookkeeping("clear the failure record (it expires on its own)", extra, required=False):
            await deadletter.forget_failures(ctx["redis"], ctx["job_id"])
    return None


def _alone(handler: Handler) -> Registry:
    registry = Registry()
    registry.add(handler)
    return registry


def refuse_awaitable(handler: Handler, result: object) -> None:
    """A handler that returned an awaitable did not do its work: fail the run, and say how to fix it."""
    if not inspect.isawaitable(result):
        return
    if inspect.iscoroutine(result):
        result.close()  # no "never awaited" RuntimeWarning on top of the clear error
    fix = "`await` that call" if handler.is_async else "declare it `async def` and `await` that call"
    raise NotAwaited(
        f"handler {handler.name} returned a {type(result).__name__} it never awaited, so that work "
        f"never ran; {fix}"
    )


async def _note_failure(ctx: dict[str, Any], settings: Settings, extra: dict[str, object]) -> None:
    # Only the dead letter's "first failure" time suffers if this fails; the retry itself goes ahead.
    async with _bookkeeping("record the first failure time", extra, required=False):
        await deadletter.record_failure(
            ctx["redis"], ctx["job_id"], now_ms=timestamp_ms(), keep_ms=settings.retention_ms
        )


async def _dead_letter(
    ctx: dict[str, Any],
    event: StoredEvent,
    handler: str,
    attempts: int,
    failure: Failure,
    extra: dict[str, object],
    reason: str,
    metrics: WorkerMetrics | None,
) -> DeadLettered:
    # Dropping the job when this fails would lose the event: it stays queued, its next run writes it.
    async with _bookkeeping("write the dead letter", extra, level=logging.ERROR):
        dead_id = await deadletter.write(
            ctx["redis"],
            event,
            handler=handler,
            attempts=attempts,
            failure=failure,
            now_ms=timestamp_ms(),
            job_id=ctx["job_id"],
        )
    if metrics is not None:
        metrics.dead_lettered(handler, reason)
    log.error(
        "%s gave up on %s after %d attempt(s): %s: %s (dead letter %s)",
        handler, event.entry_id, attempts, failure.error_type, failure.message, dead_id, extra=extra,
    )  # fmt: skip
    return DeadLettered(dead_id)
