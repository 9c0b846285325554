"""`Context`: what a handler's ``ctx`` holds, field by field.

``ctx`` is arq's job context plus the relay's own fields. It is a fresh dict for every attempt, built
from the worker's shared context, so values your ``startup(ctx)`` stores (a database pool, an HTTP
client) are there in every handler. To type such values, extend it::

    class TaskContext(Context, total=False):
        http: httpx.AsyncClient
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from arq.connections import ArqRedis

from relay.core.settings import Settings
from worker.later import Later
from worker.once import Once


class Context(TypedDict):
    """The ``ctx`` every handler receives."""

    redis: ArqRedis
    """The worker's Redis client (redis.asyncio, bytes responses). Async handlers only: a plain ``def``
    handler runs in a thread and must not use it."""

    event_id: str
    """The stream entry id of the event, e.g. ``"1718000000000-0"``. It is the same on every attempt
    and on a replay: an idempotency key for the services you call (see also `once`)."""

    attempt: int
    """1 on the first attempt, 2 on the first retry, and so on up to the handler's ``max_attempts``."""

    handler: str
    """The running handler's name, as it appears in dead letters."""

    event_type: str
    """The event's type name, e.g. ``"VOTE_ADD"``, also for types the relay does not know."""

    received_ms: int
    """When the edge accepted the delivery, in milliseconds since the Unix epoch."""

    body: bytes
    """The event's raw body, byte for byte as the sender signed it (the built-in forwarding sends it on)."""

    settings: Settings
    """The relay's settings (``RELAY_*``)."""

    once: Once
    """Do a side effect once per event, however often the handler runs (async handlers only)::

        async with ctx["once"]("grant-role") as first:
            if first:
                await grant_role(...)

    The block's success is recorded in Redis; a block that raises runs again on the next attempt.
    Replays keep the record (the effect is not redone) unless run with ``--rerun-effects``."""

    later: Later
    """Run another handler for this event after a delay: ``await ctx["later"]("remove-role", 3600)``.
    A job in Redis (it survives restarts); scheduling it twice for one event queues it once."""

    job_id: str
    """arq's job id: ``"<event_id>:<handler>"`` (a replay adds a suffix)."""

    job_try: int
    """arq's own run counter: ``attempt`` plus any runs skipped by workers that lacked the handler."""

    enqueue_time: datetime
    """When the bridge queued the job."""

    score: int
    """arq's queue score: the millisecond time the job was due to run."""
