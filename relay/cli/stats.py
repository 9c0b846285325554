"""``relay stats``: is the pipeline keeping up? One snapshot of every Redis key the relay uses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict

import click
from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.cli.common import App, Unreachable, pass_app, redis_failure
from relay.core.keys import (
    DEAD_STREAM,
    EVENTS_STREAM,
    REJECTED_STREAM,
    WORKER_HEARTBEAT_PREFIX,
)
from relay.ops.stats import Stats, collect
from relay.ops.timespec import ago, id_ms, iso, span
from worker.forward.destination import Destination
from worker.keys import ARQ_QUEUE


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
