"""``relay replay --since T``: run a time range of ``relay:events`` through the handlers again.

For recovering after a buggy handler was fixed, when the bug did not raise (so left no dead
letters) or the dead letters were purged. Each event in the range gets one job per matching
handler (all of them, or only ``--handler``), on the same enqueue path the bridge uses
(`worker.enqueue`). The jobs get ids of their own (``<event id>:<handler>:rerun:<run>``), so they
run even though the original jobs' results are still kept; the handlers see the original
``ctx["event_id"]``, so an idempotent handler can tell a replay from a first run.

Entries the workers have not handled yet (not read by the ``relay:workers`` group, or read and not
yet passed on) are skipped: they will run anyway, and replaying them would run them twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import click
from arq.utils import timestamp_ms
from redis.asyncio import Redis

from relay.cli.common import App, pass_app, progress, rate_option, rerun_effects_option
from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM, StoredEvent
from relay.core.redis import redis_now_ms
from relay.ops.pacing import Pacer
from relay.ops.timespec import bound_ms, iso, parse_time
from worker.enqueue import JobSpec, enqueue, handler_job_id
from worker.once import forget_effects
from worker.registry import Registry
from worker.retention import StreamId, group_states, parse_id

PAGE = 500


def rerun_job_id(entry_id: str, handler: str, run: str) -> str:
    """A job id no original job, dead-letter replay or other rerun can have."""
    return f"{handler_job_id(entry_id, handler)}:rerun:{run}"


@dataclass
class Plan:
    """What a replay of a range will do."""

    jobs: list[JobSpec] = field(default_factory=list)
    events: int = 0
    """Events that get at least one job."""
    handlers: set[str] = field(default_factory=set)
    not_handled_yet: int = 0
    """Entries the workers have not passed on yet: skipped, they will run anyway."""
    unhandled: int = 0
    """Events no selected handler takes."""
    malformed: int = 0


def add_jobs(plan: Plan, event: StoredEvent, registry: Registry, handler: str | None, run: str) -> None:
    """Add `event`'s jobs to `plan`: one per matching handler, or only `handler`'s."""
    names = [h.name for h in registry.for_type(event.type) if handler is None or h.name == handler]
    if not names:
        plan.unhandled += 1
        return
    plan.events += 1
    plan.handlers.update(names)
    plan.jobs += [
        JobSpec.for_event(event, name, job_id=rerun_job_id(event.entry_id, name, run)) for name in names
    ]


async def _workers_progress(redis: Redis, start: str, end: str) -> tuple[StreamId | None, set[str]]:
    """The workers' last read entry (None: they never read) and the entries in the range still pending."""
    states = [state for state in await group_states(redis) if state.name == CONSUMER_GROUP]
    if not states:
        return None, set()
    pending: set[str] = set()
    low = start
    while True:
        page = await redis.xpending_range(EVENTS_STREAM, CONSUMER_GROUP, min=low, max=end, count=PAGE)
        pending.update(item["message_id"].decode() for item in page)
        if len(page) < PAGE:
            return states[0].last_delivered, pending
        low = f"({page[-1]['message_id'].decode()}"


async def make_plan(
    redis: Redis, registry: Registry, handler: str | None, start: str, end: str, run: str
) -> Plan:
    """Read the range and decide every job (the range's events are held in memory meanwhile)."""
    plan = Plan()
    if not await redis.exists(EVENTS_STREAM):
        return plan
    last_read, pending = await _workers_progress(redis, start, end)
    low = start
    while True:
        entries = await redis.xrange(EVENTS_STREAM, min=low, max=end, count=PAGE)
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if last_read is None or parse_id(entry_id) > last_read or entry_id in pending:
                plan.not_handled_yet += 1
                continue
            try:
                event = StoredEvent.from_entry(raw_id, fields)
            except (KeyError, ValueError):
                plan.malformed += 1  # the bridge dead-lettered it when it read it
                continue
            add_jobs(plan, event, registry, handler, run)
        if len(entries) < PAGE:
            return plan
        low = f"({entries[-1][0].decode()}"


async def run_plan(
    redis: Redis, jobs: Sequence[JobSpec], rate: float, expires_ms: int, *, rerun_effects: bool = False
) -> int:
    """Enqueue `jobs` at `rate` per second with a progress bar; returns how many were new.

    With `rerun_effects`, what ``ctx["once"]`` recorded for each job's (event, handler) is forgotten first.
    """
    pacer = Pacer(rate)
    created = 0
    with progress(len(jobs), "replaying") as advance:
        for first in range(0, len(jobs), pacer.batch):
            batch = jobs[first : first + pacer.batch]
            await pacer.wait(len(batch))
            if rerun_effects:
                await forget_effects(redis, [(job.event_id, job.handler) for job in batch])
            created += await enqueue(redis, batch, now_ms=timestamp_ms(), expires_ms=expires_ms)
            advance(len(batch))
    return created


@click.command(short_help="Run a time range of stored events through the handlers again.")
@click.option(
    "--since",
    required=True,
    metavar="TIME",
    help="Start of the range (inclusive): 2h, 2024-06-10T14:00, an entry id.",
)
@click.option(
    "--until", default="now", show_default=True, metavar="TIME", help="End of the range (inclusive)."
)
@click.option("--handler", help="Only this handler (default: every handler of each event).")
@rate_option
@rerun_effects_option
@click.option("--dry-run", is_flag=True, help="Say what would be replayed, enqueue nothing.")
@pass_app
def replay(
    app: App, since: str, until: str, handler: str | None, rate: float, rerun_effects: bool, dry_run: bool
) -> None:
    """Run the events stored in a time range through the handlers again.

    TIME is a duration ago (90s, 2h, 7d), an ISO 8601 time (UTC unless it has an offset), 'now',
    or a stream entry id. Events stay in relay:events for RELAY_RETENTION_SECONDS (7 days by
    default); older ones cannot be replayed. Handlers see the original ctx["event_id"], and skip the
    side effects done under ctx["once"] unless --rerun-effects. Events the workers have not handled
    yet are skipped: they will run anyway.

    \b
    Examples:
        relay replay --since 2h --handler reward_voter
        relay replay --since 2024-06-10T14:00 --until 2024-06-10T15:30 --dry-run
    """
    registry = app.handlers(require=handler)

    async def work(redis: Redis) -> None:
        now_ms = await redis_now_ms(redis)
        try:
            start, end = parse_time(since, now_ms), parse_time(until, now_ms)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if bound_ms(start) > bound_ms(end) or ("-" in end and parse_id(start) > parse_id(end)):
            raise click.BadParameter(f"--since {since} is after --until {until}")
        plan = await make_plan(redis, registry, handler, start, end, run=str(now_ms))
        span = f"from {iso(bound_ms(start))} to {iso(bound_ms(end))}"
        if plan.not_handled_yet:
            click.echo(
                f"skipping {plan.not_handled_yet} event(s) the workers have not handled yet (they will run anyway)"
            )
        if plan.unhandled:
            takers = f"to {handler}" if handler else "to any handler"
            click.echo(f"{plan.unhandled} event(s) in the range do not go {takers}")
        if not plan.jobs:
            click.echo(f"nothing to replay {span}")
            return
        names = ", ".join(sorted(plan.handlers))
        click.echo(
            f"{'would replay' if dry_run else 'replaying'} {plan.events} event(s) {span}: {len(plan.jobs)} job(s) for {names}"
        )
        if dry_run:
            return
        created = await run_plan(
            redis, plan.jobs, rate, app.settings.retention_ms, rerun_effects=rerun_effects
        )
        click.echo(f"enqueued {created} job(s)")

    app.run(work)
