"""``relay stats``: is the pipeline keeping up? One snapshot of every Redis key the relay uses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace

import click
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from relay.cli.common import App, Unreachable, pass_app, redis_failure, redis_now_ms
from relay.cli.timespec import ago, id_ms, iso, span
from relay.core.heartbeat import Heartbeat, read_heartbeats
from relay.core.keys import (
    DEAD_STREAM,
    EVENTS_STREAM,
    F_SOURCE,
    REJECTED_STREAM,
    SPHERE,
    WORKER_HEARTBEAT_PREFIX,
    as_text,
)
from relay.edge import rejections
from worker.forward.destination import Destination
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


def to_json(stats: Stats) -> str:
    return json.dumps(asdict(stats), separators=(",", ":"))


def render(stats: Stats) -> str:
    """The snapshot as a few aligned lines."""
    now = stats.time_ms
    lines = [f"Redis {stats.redis} at {iso(now)}", ""]
    events = f"{stats.events} entries"
    if stats.oldest_event_id and stats.newest_event_id:
        oldest, newest = id_ms(stats.oldest_event_id), id_ms(stats.newest_event_id)
        events += f" (oldest {ago(oldest, now)}, newest {ago(newest, now)})"
    lines.append(f"{'events':<10}{EVENTS_STREAM:<16}{events}")
    if stats.sources:
        sampled = sum(source.recent for source in stats.sources)
        shares = ", ".join(
            f"{source.source} {source.recent} (newest {ago(id_ms(source.newest_id), now)})"
            for source in stats.sources
        )
        lines.append(f"{'':<10}by source, in the newest {sampled}: {shares}")
    if not stats.groups:
        lines.append(f"{'':<10}no consumer group yet: no worker has started")
    for group in stats.groups:
        lag = "unknown" if group.lag is None else str(group.lag)
        lines.append(
            f"{'':<10}group {group.name}: lag {lag}, pending {group.pending}, "
            f"{len(group.consumers)} consumer(s), last read {group.last_delivered_id}"
        )
        for consumer in group.consumers:
            state = "live" if consumer.live else "STOPPED (no heartbeat)"
            line = f"{'':<12}{consumer.name}: {state}, pending {consumer.pending}"
            if consumer.oldest_pending_idle_ms is not None:
                line += (
                    f" (oldest {consumer.oldest_pending_id} waiting {span(consumer.oldest_pending_idle_ms)})"
                )
            lines.append(f"{line}, last seen {span(consumer.idle_ms)} ago")
    lines.append(f"{'workers':<10}{WORKER_HEARTBEAT_PREFIX + '*':<16}{len(stats.workers)} live")
    for worker in stats.workers:
        lines.append(
            f"{'':<12}{worker.name}: pid {worker.pid} on {worker.host}, {len(worker.running)} job(s) running, "
            f"{worker.jobs_done} done, beat {span(max(0, now - worker.beat_ms))} ago"
        )
    waiting = stats.queue_jobs - stats.queue_due
    lines.append(
        f"{'queue':<10}{ARQ_QUEUE:<16}{stats.queue_jobs} jobs: {stats.queue_due} due or running, "
        f"{waiting} waiting to retry"
    )
    hint = "  (relay dlq ls)" if stats.dead_letters else ""
    lines.append(f"{'dead':<10}{DEAD_STREAM:<16}{stats.dead_letters} dead letters{hint}")
    for destination in stats.destinations:
        lines.append(
            f"{'forward':<10}{destination.name}: {destination.delivered} delivered, "
            f"{destination.retrying} retrying, {destination.dead} dead"
        )
    hint = "  (relay rejected)" if stats.refused_recorded else ""
    lines.append(
        f"{'rejected':<10}{REJECTED_STREAM:<16}{stats.refused} requests refused, "
        f"{stats.refused_recorded} recorded{hint}"
    )
    return "\n".join(lines)


@click.command(short_help="Stream length, lag, pending, queue, dead letters, refusals.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (one per refresh with --watch).")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[SECONDS]",
    help="Refresh every SECONDS (default 2) until Ctrl-C.",
)
@click.option("--iterations", type=click.IntRange(min=1), default=None, hidden=True)
@pass_app
def stats(app: App, as_json: bool, watch: float | None, iterations: int | None) -> None:
    """Show whether the pipeline keeps up: the event stream (with each sender's share of the newest
    entries and its latest delivery), each consumer group with its lag and
    pending entries (by consumer, with the oldest one's waiting time), the arq queue, the dead
    letters, the refused requests, and each forwarding destination (RELAY_FORWARD_URL): events
    delivered, waiting for a retry, and dead letters.

    A growing lag means the workers read slower than events arrive; pending entries waiting long
    mean a worker is stuck or dead (another takes them over after RELAY_CLAIM_IDLE_SECONDS).

    \b
    Examples:
        relay stats
        relay stats --watch 5
        relay stats --json | jq .dead_letters
    """
    if watch is None:
        snapshot = app.run(lambda redis: collect(redis, app.redis_name, forward_names(app)))
        click.echo(to_json(snapshot) if as_json else render(snapshot))
        return
    try:
        app.run(lambda redis: _watch(redis, app.redis_name, watch, iterations, as_json, forward_names(app)))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends


def forward_names(app: App) -> list[str]:
    return [Destination(url).name for url in app.settings.forward_url]


async def _watch(
    redis: Redis,
    redis_name: str,
    interval: float,
    iterations: int | None,
    as_json: bool,
    destinations: Sequence[str] = (),
) -> None:
    """Print a snapshot every `interval` seconds; a Redis outage is shown and watched through."""
    count = 0
    while iterations is None or count < iterations:
        count += 1
        try:
            snapshot = await collect(redis, redis_name, destinations)
        except (RedisError, OSError) as exc:
            error = (
                redis_failure(exc, redis_name)
                if isinstance(exc, RedisError)
                else Unreachable(f"cannot reach Redis at {redis_name}: {exc}")
            )
            click.echo(f"relay: {error.format_message()} (retrying every {interval:g}s)", err=True)
        else:
            if as_json:
                click.echo(to_json(snapshot))
            else:
                click.clear()  # does nothing when stdout is not a terminal
                click.echo(render(snapshot))
        if iterations is None or count < iterations:
            await asyncio.sleep(interval)
