"""Where each forwarding destination stands, for ``relay stats`` and the admin page: events delivered
(in all), waiting for a retry, and dead letters. Read from what every handler leaves in Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from relay.core.keys import DEAD_STREAM, HANDLED_TOTALS, as_text
from worker.deadletter import F_HANDLER
from worker.forward.destination import is_destination_name
from worker.keys import ARQ_QUEUE

PAGE = 1000


@dataclass(frozen=True, slots=True)
class DestinationState:
    name: str
    """The destination's handler name, ``forward-<host>-<tag>``."""
    delivered: int
    """Events it answered 2xx to, in all (counted by the workers' outcome recorder: best effort)."""
    retrying: int
    """Events whose next attempt waits for its time (a retry's backoff, or a Retry-After)."""
    dead: int
    """Its dead letters in ``relay:dead`` now."""


def handler_of(job_id: str) -> str:
    """The handler of a job id ``<entry id>:<handler>[:replay:...]``."""
    return job_id.split(":")[1] if ":" in job_id else ""


async def _dead_by_handler(redis: Redis) -> Counter[str]:
    counts: Counter[str] = Counter()
    start = "-"
    while True:
        entries = await redis.xrange(DEAD_STREAM, min=start, count=PAGE)
        for _, fields in entries:
            counts[as_text(fields.get(F_HANDLER.encode(), b""))] += 1
        if len(entries) < PAGE:
            return counts
        start = "(" + as_text(entries[-1][0])


async def read_states(redis: Redis, now_ms: int, configured: Iterable[str] = ()) -> list[DestinationState]:
    """Every destination in `configured` (handler names) or seen in Redis, by name."""
    raw_totals = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(HANDLED_TOTALS))
    totals = {as_text(k): int(v) for k, v in raw_totals.items()}
    later = await redis.zrangebyscore(ARQ_QUEUE, f"({now_ms}", "+inf")
    waiting = Counter(handler_of(as_text(job_id)) for job_id in later)
    dead = await _dead_by_handler(redis)
    names = {*configured, *totals, *waiting, *dead}
    return [
        DestinationState(name, totals.get(name, 0), waiting[name], dead[name])
        for name in sorted(n for n in names if is_destination_name(n))
    ]
