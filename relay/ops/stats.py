"""One snapshot of every Redis key the relay uses: is the pipeline keeping up? (``relay stats``, the admin page)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relay.core.heartbeat import Heartbeat, read_heartbeats
from relay.core.keys import DEAD_STREAM, EVENTS_STREAM, F_SOURCE, SPHERE, as_text
from relay.core.redis import redis_now_ms
from relay.edge import rejections
from worker.forward.states import DestinationState, read_states
from worker.keys import ARQ_QUEUE


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    name: str
    pending: int
    """Entries this consumer read and has not acknowledged (a worker acknowledges once jobs exist)."""
    idle_ms: int
    """Since this consumer last read or claimed."""
    oldest_pending_id: str | None
    oldest_pending_idle_ms: int | None
    """How long its oldest pending entry has waited since it was read: high means the worker is stuck or dead."""
    live: bool = False
    """A worker process with this consumer name beats (`relay.core.heartbeat`); False: it stopped or died."""


SOURCE_SAMPLE = 1000
"""Entries read back from the newest to tell each sender's share and latest delivery."""


@dataclass(frozen=True, slots=True)
class SourceStats:
    source: str
    """``sphere``, ``topgg``, ``standard``."""
    recent: int
    """Its entries among the newest `SOURCE_SAMPLE`."""
    newest_id: str
    """Its newest entry: when the sender last reached the relay."""


@dataclass(frozen=True, slots=True)
class GroupStats:
    name: str
    lag: int | None
    """Entries the group has not read yet; None when Redis cannot tell (entries deleted out of order)."""
    pending: int
    last_delivered_id: str
    consumers: list[ConsumerStats] = field(default_factory=list)
    """Live consumers, and stopped ones only while they hold entries."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Everything ``relay stats`` shows; ``--json`` prints it as is."""

    redis: str
    time_ms: int
    events: int
    """Entries in ``relay:events`` (handled ones stay for the retention period, for replay)."""
    oldest_event_id: str | None
    newest_event_id: str | None
    groups: list[GroupStats]
    queue_jobs: int
    """arq jobs in ``relay:queue``: due now, running, or waiting for a retry."""
    queue_due: int
    """Of those, the ones due now (running ones included); the rest wait for a retry's backoff."""
    dead_letters: int
    refused: int
    """Requests the edge refused (4xx), in all."""
    refused_recorded: int
    """Of those, the ones kept in ``relay:rejected`` (capped, rate-limited)."""
    workers: list[Heartbeat] = field(default_factory=list)
    """The worker processes whose heartbeat is fresh (``relay:worker:*``)."""
    sources: list[SourceStats] = field(default_factory=list)
    """Each sender's entries among the newest `SOURCE_SAMPLE`, busiest first."""
    destinations: list[DestinationState] = field(default_factory=list)
    """Each forwarding destination (``RELAY_FORWARD_URL``): delivered, retrying, dead."""


async def _first_id(redis: Redis, newest: bool) -> str | None:
    entries = await (redis.xrevrange if newest else redis.xrange)(EVENTS_STREAM, count=1)
    return as_text(entries[0][0]) if entries else None


async def _consumers(redis: Redis, group: str) -> list[ConsumerStats]:
    result = []
    for info in await redis.xinfo_consumers(EVENTS_STREAM, group):
        name = as_text(info["name"])
        oldest = (
            await redis.xpending_range(EVENTS_STREAM, group, "-", "+", 1, consumername=name)
            if int(info["pending"])
            else []
        )
        result.append(
            ConsumerStats(
                name=name,
                pending=int(info["pending"]),
                idle_ms=int(info["idle"]),
                oldest_pending_id=as_text(oldest[0]["message_id"]) if oldest else None,
                oldest_pending_idle_ms=int(oldest[0]["time_since_delivered"]) if oldest else None,
            )
        )
    return result


async def _sources(redis: Redis) -> list[SourceStats]:
    counts: dict[str, int] = {}
    newest: dict[str, str] = {}
    for entry_id, fields in await redis.xrevrange(EVENTS_STREAM, count=SOURCE_SAMPLE):
        source = as_text(fields.get(F_SOURCE.encode(), SPHERE))  # Sphere's entries carry no source field
        counts[source] = counts.get(source, 0) + 1
        newest.setdefault(source, as_text(entry_id))
    ranked = sorted(counts, key=lambda source: (-counts[source], source))
    return [SourceStats(source, counts[source], newest[source]) for source in ranked]


async def _groups(redis: Redis) -> list[GroupStats]:
    try:
        infos = await redis.xinfo_groups(EVENTS_STREAM)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return []  # nothing stored yet and no worker started
        raise
    groups = []
    for info in infos:
        name = as_text(info["name"])
        lag = info.get("lag")
        groups.append(
            GroupStats(
                name=name,
                lag=int(lag) if lag is not None else None,
                pending=int(info["pending"]),
                last_delivered_id=as_text(info["last-delivered-id"]),
                consumers=await _consumers(redis, name),
            )
        )
    return groups


def _shown(groups: list[GroupStats], workers: list[Heartbeat]) -> list[GroupStats]:
    """Each group with its live consumers, and stopped ones only while they hold entries (a stopped
    one holding nothing is removed by the live workers after RELAY_CLAIM_IDLE_SECONDS)."""
    live = {worker.name for worker in workers}
    return [
        replace(
            group,
            consumers=[
                replace(c, live=c.name in live) for c in group.consumers if c.name in live or c.pending
            ],
        )
        for group in groups
    ]


async def collect(redis: Redis, redis_name: str, destinations: Iterable[str] = ()) -> Stats:
    """Read one snapshot. Each figure is exact when read; together they are a few milliseconds apart.

    `destinations`: the forwarding handlers' names configured (shown even before their first event).
    """
    now_ms = await redis_now_ms(redis)
    refused, recorded = await rejections.totals(redis)
    workers = await read_heartbeats(redis, now_ms)
    return Stats(
        workers=workers,
        redis=redis_name,
        time_ms=now_ms,
        events=int(await redis.xlen(EVENTS_STREAM)),
        oldest_event_id=await _first_id(redis, newest=False),
        newest_event_id=await _first_id(redis, newest=True),
        groups=_shown(await _groups(redis), workers),
        queue_jobs=int(await redis.zcard(ARQ_QUEUE)),
        queue_due=int(await redis.zcount(ARQ_QUEUE, "-inf", now_ms)),
        dead_letters=int(await redis.xlen(DEAD_STREAM)),
        refused=refused,
        refused_recorded=recorded,
        sources=await _sources(redis),
        destinations=await read_states(redis, now_ms, destinations),
    )
