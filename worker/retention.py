"""Trim ``relay:events`` to its retention period, never below an entry some consumer group still needs.

Acknowledged history is kept for ``RELAY_RETENTION_SECONDS`` so events can be replayed. The trim
point (XTRIM MINID) is the lowest of: now minus the retention, and for every consumer group on the
stream (the workers' and any a user added for their own systems) its oldest pending entry and its
first undelivered one. Entries at or above it stay.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from relay.core.keys import EVENTS_STREAM

log = logging.getLogger("worker.retention")

StreamId = tuple[int, int]


def parse_id(entry_id: str | bytes) -> StreamId:
    """``"1718000000000-3"`` -> ``(1718000000000, 3)``."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def after(stream_id: StreamId) -> StreamId:
    """The smallest id greater than `stream_id`: the lowest an undelivered entry can have."""
    ms, seq = stream_id
    if seq == 2**64 - 1:
        return ms + 1, 0
    return ms, seq + 1


@dataclass(frozen=True, slots=True)
class GroupState:
    """What a consumer group still needs of the stream."""

    name: str
    last_delivered: StreamId
    """Entries above this have not been read by the group yet."""
    oldest_pending: StreamId | None
    """The oldest entry read but not acknowledged, or None when nothing is pending."""


def trim_floor(now_ms: int, retention_ms: int, groups: Iterable[GroupState]) -> StreamId:
    """The MINID to trim to: entries below it are older than the retention and needed by no group."""
    floor: StreamId = (max(now_ms - retention_ms, 0), 0)
    for group in groups:
        floor = min(floor, after(group.last_delivered))
        if group.oldest_pending is not None:
            floor = min(floor, group.oldest_pending)
    return floor


async def group_states(redis: Redis, stream: str = EVENTS_STREAM) -> list[GroupState]:
    """Every consumer group of `stream`, with its last delivered and oldest pending entry."""
    states = []
    for info in await redis.xinfo_groups(stream):
        name = info["name"]
        summary = await redis.xpending(stream, name)
        oldest = summary.get("min") if summary.get("pending") else None
        states.append(
            GroupState(
                name=name.decode() if isinstance(name, bytes) else str(name),
                last_delivered=parse_id(info["last-delivered-id"]),
                oldest_pending=parse_id(oldest) if oldest else None,
            )
        )
    return states


async def trim_events(redis: Redis, retention_ms: int, stream: str = EVENTS_STREAM) -> int:
    """Trim `stream` to `trim_floor`, using Redis's clock (entry ids come from it). Returns entries removed.

    Safe to run from every worker at once. A group created between reading the groups and trimming
    could lose only entries already older than the retention.
    """
    if not await redis.exists(stream):
        return 0
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    floor = trim_floor(now_ms, retention_ms, await group_states(redis, stream))
    removed = int(await redis.xtrim(stream, minid=format_id(floor), approximate=False))
    if removed:
        log.info("trimmed %d entries below %s from %s", removed, format_id(floor), stream)
    return removed
