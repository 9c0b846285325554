"""What the admin page reads from Redis: the overview, events with their handlers' states, dead letters.

Every read is bounded: the chart reads at most `CHART_SCAN` entries, a search looks at the newest
`SEARCH_SCAN` events, and lists show at most `SHOWN`. Redis errors propagate; the app answers them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from relay.admin.chart import Minute
from relay.admin.forms import DeadFilter, Search
from relay.core.events import InvalidBody, InvalidEvent, load_object, normalize
from relay.core.heartbeat import Heartbeat, live_heartbeats
from relay.core.keys import (
    CONSUMER_GROUP,
    EVENTS_STREAM,
    F_SOURCE,
    SPHERE,
    EntryFields,
    as_text,
    minute_redis_key,
    outcome_redis_key,
)
from relay.core.senders import parse_stored
from relay.ops.deadletters import iter_dead
from relay.ops.stats import ConsumerStats, Stats, collect
from relay.ops.timespec import id_ms
from worker.deadletter import DeadLetter, get_dead
from worker.forward.destination import is_destination_name
from worker.outcomes import Outcome
from worker.registry import Registry

CHART_MINUTES = 60
CHART_SCAN = 50_000
"""Entries read at most to count the last hour's arrivals; past it the chart says "at least"."""
SEARCH_SCAN = 10_000
"""A search by user or server id looks at this many of the newest events."""
SHOWN = 200
RATE_WINDOW_MS = 5 * 60_000


@dataclass(frozen=True, slots=True)
class Overview:
    stats: Stats
    oldest_unhandled_ms: int | None
    """When the oldest event not yet handed to jobs arrived (pending or unread), or None."""
    minutes: list[Minute]
    chart_complete: bool
    received_per_s: float
    handled_per_s: float
    stopped_workers: list[ConsumerStats] = field(default_factory=list)
    """Consumers without a heartbeat that still hold entries (`relay stats` shows only those)."""


async def _oldest_unhandled(redis: Redis, stats: Stats) -> int | None:
    group = next((g for g in stats.groups if g.name == CONSUMER_GROUP), None)
    if group is None:
        first = await redis.xrange(EVENTS_STREAM, count=1)
        return id_ms(as_text(first[0][0])) if first else None
    oldest: list[int] = []
    if group.pending:
        summary = await redis.xpending(EVENTS_STREAM, CONSUMER_GROUP)
        if summary.get("min"):
            oldest.append(id_ms(as_text(summary["min"])))
    unread = await redis.xrange(EVENTS_STREAM, min=f"({group.last_delivered_id}", count=1)
    if unread:
        oldest.append(id_ms(as_text(unread[0][0])))
    return min(oldest, default=None)


async def last_hour(redis: Redis, now_ms: int) -> tuple[list[Minute], bool]:
    """Received (from the stream's ids), handled and failed (`worker.outcomes`) per minute; and
    whether the received counts are complete (False when more than `CHART_SCAN` arrived)."""
    first = now_ms // 60_000 - CHART_MINUTES + 1
    received = [0] * CHART_MINUTES
    start, seen, complete = f"{first * 60_000}-0", 0, True
    while True:
        entries = await redis.xrange(EVENTS_STREAM, min=start, count=1000)
        for entry_id, _ in entries:
            index = id_ms(as_text(entry_id)) // 60_000 - first
            if 0 <= index < CHART_MINUTES:
                received[index] += 1
        seen += len(entries)
        if len(entries) < 1000:
            break
        if seen >= CHART_SCAN:
            complete = False
            break
        start = f"({as_text(entries[-1][0])}"
    pipe = redis.pipeline(transaction=False)
    for minute in range(first, first + CHART_MINUTES):
        pipe.hmget(minute_redis_key(minute), ["handled", "failed"])
    counts = await pipe.execute()
    minutes = [
        Minute((first + i) * 60_000, received[i], int(handled or 0), int(failed or 0))
        for i, (handled, failed) in enumerate(counts)
    ]
    return minutes, complete


def per_second(minutes: Sequence[Minute], now_ms: int, attribute: str) -> float:
    """A rate over the last five minutes, the current (partial) one included."""
    window = [m for m in minutes if m.start_ms > now_ms - RATE_WINDOW_MS]
    if not window:
        return 0.0
    seconds = max((now_ms - window[0].start_ms) / 1000, 1.0)
    return float(sum(getattr(m, attribute) for m in window)) / seconds


async def overview(redis: Redis, redis_name: str, registry: Registry | None = None) -> Overview:
    forward = [h.name for h in registry or () if is_destination_name(h.name)]
    stats = await collect(redis, redis_name, forward)
    minutes, complete = await last_hour(redis, stats.time_ms)
    return Overview(
        stats=stats,
        oldest_unhandled_ms=await _oldest_unhandled(redis, stats),
        minutes=minutes,
        chart_complete=complete,
        received_per_s=per_second(minutes, stats.time_ms, "received"),
        handled_per_s=per_second(minutes, stats.time_ms, "handled"),
        stopped_workers=[c for g in stats.groups for c in g.consumers if not c.live],
    )


@dataclass(frozen=True, slots=True)
class HandlerState:
    """Where one event stands with one handler."""

    handler: str
    state: str
    """queued, running, retrying, done, dead, waiting (for a worker with the handler), replayed."""
    at_ms: int = 0
    outcome: Outcome | None = None
    """What the handler's latest run recorded (`worker.outcomes`), if it has run."""
    dead_exists: bool = False
    """Whether the outcome's dead letter is still there to open."""


@dataclass(frozen=True, slots=True)
class EventView:
    entry_id: str
    type: str
    received_ms: int
    body: str
    """Pretty-printed when it is JSON."""
    user_id: str
    guild_id: str
    """The guild or bot the event is about, whichever sender sent it."""
    handlers: list[HandlerState] = field(default_factory=list)
    source: str = SPHERE


def pretty(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body.decode(errors="replace")


def _ids(body: bytes, event_type: str = "") -> tuple[str, str]:
    """The user and the guild (or bot) an event is about: from its normalized `Vote`/`Review` when
    it has one (every sender), else from Sphere's ``user_id`` and ``guild_id`` fields."""
    try:
        normalized = normalize(parse_stored(event_type, body)) if event_type else None
    except (InvalidBody, InvalidEvent):
        normalized = None
    if normalized is not None:
        return normalized.user_id, normalized.target_id
    try:
        data = load_object(body)
    except InvalidBody:
        return "", ""
    user, guild = data.get("user_id"), data.get("guild_id")
    return (user if isinstance(user, str) else ""), (guild if isinstance(guild, str) else "")


def _source(fields: dict[bytes, bytes]) -> str:
    return as_text(fields.get(F_SOURCE.encode(), SPHERE))  # Sphere's entries carry no source field


def matches_search(search: Search, user_id: str, guild_id: str, source: str = SPHERE) -> bool:
    return (
        (search.user_id is None or search.user_id == user_id)
        and (search.guild_id is None or search.guild_id == guild_id)
        and (search.source is None or search.source == source)
    )


def _matches(search: Search, fields: dict[bytes, bytes]) -> bool:
    body, event_type = fields.get(b"body", b""), as_text(fields.get(b"type", b""))
    return matches_search(search, *_ids(body, event_type), _source(fields))


async def _find(redis: Redis, search: Search) -> tuple[list[tuple[str, dict[bytes, bytes]]], int]:
    """Matching entries, newest first, at most `SHOWN`; and how many entries were looked at."""
    if search.entry_id is not None:
        entries = await redis.xrange(EVENTS_STREAM, min=search.entry_id, max=search.entry_id, count=1)
        found = [(as_text(i), f) for i, f in entries]
        return ([e for e in found if _matches(search, e[1])], len(found))
    needle = (search.user_id or search.guild_id or "").encode()
    found, seen, end = [], 0, "+"
    while seen < SEARCH_SCAN and len(found) < SHOWN:
        entries = await redis.xrevrange(EVENTS_STREAM, max=end, count=500)
        for entry_id, fields in entries:
            if needle in fields.get(b"body", b"") and _matches(search, fields):
                found.append((as_text(entry_id), fields))
        seen += len(entries)
        if len(entries) < 500:
            break
        end = f"({as_text(entries[-1][0])}"
    return found[:SHOWN], seen


def running_jobs(workers: Sequence[Heartbeat]) -> dict[tuple[str, str], int]:
    """(entry id, handler) -> since when a live worker runs it."""
    return {(r.entry_id, r.handler): r.since_ms for w in workers for r in w.running}


def handler_states(
    entry_id: str,
    event_type: str,
    registry: Registry,
    recorded: dict[str, Outcome],
    running: dict[tuple[str, str], int],
    dead_present: set[str],
) -> list[HandlerState]:
    """Per handler: running (a heartbeat says so), else its recorded outcome, else queued."""
    names = [h.name for h in registry.for_type(event_type)]
    names += sorted(name for name in recorded if name not in names)
    states = []
    for name in names:
        outcome = recorded.get(name)
        if (entry_id, name) in running:
            states.append(HandlerState(name, "running", at_ms=running[(entry_id, name)]))
        elif outcome is None:
            states.append(HandlerState(name, "queued"))
        else:
            dead_exists = outcome.dead_id in dead_present
            states.append(HandlerState(name, outcome.state, outcome.at_ms, outcome, dead_exists))
    return states


async def search_events(redis: Redis, search: Search, registry: Registry) -> tuple[list[EventView], int]:
    """The events `search` finds, each with its handlers' states; and how many events were looked at."""
    found, seen = await _find(redis, search)
    running = running_jobs(await live_heartbeats(redis))
    pipe = redis.pipeline(transaction=False)
    for entry_id, _ in found:
        pipe.hgetall(outcome_redis_key(entry_id))
    records = await pipe.execute() if found else []
    views = []
    for (entry_id, fields), raw in zip(found, records, strict=True):
        recorded = {}
        for name, value in raw.items():
            outcome = Outcome.from_json(value)
            if outcome is not None:
                recorded[as_text(name)] = outcome
        dead_present = {
            o.dead_id for o in recorded.values() if o.dead_id and await get_dead(redis, o.dead_id) is not None
        }
        read = EntryFields(fields)
        body = read.raw("body")
        user_id, guild_id = _ids(body, read.text("type"))
        views.append(
            EventView(
                entry_id=entry_id,
                type=read.text("type"),
                received_ms=read.number("received_ms"),
                body=pretty(body),
                user_id=user_id,
                guild_id=guild_id,
                handlers=handler_states(
                    entry_id, read.text("type"), registry, recorded, running, dead_present
                ),
                source=_source(fields),
            )
        )
    return views, seen


def dead_matches(letter: DeadLetter, flt: DeadFilter, now_ms: int) -> bool:
    written = id_ms(letter.id)
    return (
        (flt.handler is None or letter.handler == flt.handler)
        and (flt.error_type is None or letter.error_type == flt.error_type)
        and (flt.older_than_s is None or written <= now_ms - flt.older_than_s * 1000)
        and (flt.newer_than_s is None or written >= now_ms - flt.newer_than_s * 1000)
    )


@dataclass(frozen=True, slots=True)
class DeadScan:
    matching: list[DeadLetter]
    """Oldest first."""
    handlers: list[str]
    """Every handler among all the dead letters, for the filter's choices; likewise `error_types`."""
    error_types: list[str]


async def scan_dead(redis: Redis, flt: DeadFilter, now_ms: int) -> DeadScan:
    """One pass over the dead letters (up to `flt.upto` when set): those `flt` selects, and the choices."""
    matching, handlers, errors = [], set(), set()
    async for letter in iter_dead(redis, end=flt.upto or "+"):
        handlers.add(letter.handler)
        errors.add(letter.error_type)
        if dead_matches(letter, flt, now_ms):
            matching.append(letter)
    return DeadScan(matching, sorted(h for h in handlers if h), sorted(e for e in errors if e))
