"""``relay dlq``: what failed for good, why, and running it again once fixed.

Reading and replaying go through `relay.ops.deadletters`, as the admin page's do.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Sequence

import click
from redis.asyncio import Redis

from relay.cli.common import (
    App,
    Failed,
    pass_app,
    progress,
    rate_option,
    rerun_effects_option,
)
from relay.core.keys import DEAD_STREAM
from relay.core.redis import redis_now_ms
from relay.ops.deadletters import (
    ReplayReport,
    body_text,
    iter_dead,
    matches,
    refusal,
    replay_letters,
    to_dict,
)
from relay.ops.timespec import ago, iso, parse_duration
from worker.deadletter import DeadLetter, get_dead
from worker.registry import Registry

_ID = re.compile(r"\d+-\d+")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(letters: Sequence[DeadLetter], now_ms: int) -> str:
    rows = [("ID", "EVENT", "TYPE", "HANDLER", "TRIES", "FAILED", "ERROR")]
    for letter in letters:
        error = f"{letter.error_type}: {letter.error}" if letter.error else letter.error_type
        rows.append(
            (
                letter.id,
                letter.entry_id,
                letter.type,
                letter.handler or "-",
                str(letter.attempts),
                ago(letter.last_failure_ms, now_ms) if letter.last_failure_ms else "-",
                _clip(error, 70),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


def render_letter(letter: DeadLetter, now_ms: int) -> str:
    """The whole dead letter: where it came from, how it failed, the body and the traceback."""
    try:
        body = json.dumps(json.loads(letter.body), indent=2, ensure_ascii=False)
    except ValueError:
        body = body_text(letter.body)
    failed = (
        f"{letter.attempts} attempt(s), first {iso(letter.first_failure_ms)}, "
        f"last {iso(letter.last_failure_ms)} ({ago(letter.last_failure_ms, now_ms)})"
    )
    lines = [
        f"dead letter  {letter.id}",
        f"event        {letter.entry_id} ({letter.type}, received {iso(letter.received_ms)})",
        f"handler      {letter.handler or '- (the stream entry was malformed)'}",
        f"failed       {failed}",
        f"error        {letter.error_type}: {letter.error}",
        "",
        "body:",
        *("  " + line for line in body.splitlines()),
        "",
        "traceback:",
        *("  " + line for line in (letter.traceback or "(none recorded)").splitlines()),
    ]
    return "\n".join(lines)


@click.group(short_help="List, show, replay and purge dead letters.")
def dlq() -> None:
    """Inspect, replay and purge dead letters: the (event, handler) pairs that failed for good.

    \b
    Examples:
        relay dlq ls --handler reward_voter
        relay dlq show 1718000000000-0
        relay dlq replay --all --handler reward_voter
        relay dlq purge --older-than 7d
    """


@dlq.command(name="ls")
@click.option("--handler", help="Only this handler's dead letters.")
@click.option("--type", "event_type", help="Only this event type's, e.g. VOTE_ADD.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=100, show_default=True, help="Show the newest N (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array, without the tracebacks.")
@pass_app
def ls(app: App, handler: str | None, event_type: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first: which event, which handler, how it failed.

    \b
    Examples:
        relay dlq ls
        relay dlq ls --handler reward_voter --type VOTE_ADD
        relay dlq ls --json | jq -r '.[].id'
    """

    async def read(redis: Redis) -> tuple[list[DeadLetter], int, int]:
        kept: deque[DeadLetter] = deque(maxlen=limit or None)
        matching = 0
        async for letter in iter_dead(redis):
            if matches(letter, handler, event_type):
                kept.append(letter)
                matching += 1
        return list(kept), matching, await redis_now_ms(redis)

    letters, matching, now_ms = app.run(read)
    if as_json:
        click.echo(json.dumps([to_dict(letter, traceback=False) for letter in letters], ensure_ascii=False))
        return
    if not letters:
        click.echo("no dead letters" + (" match" if handler or event_type else ""))
        return
    click.echo(render_table(letters, now_ms))
    shown = f"the newest {len(letters)} of {matching}" if len(letters) < matching else str(matching)
    click.echo(f"\n{shown} dead letter(s); relay dlq show ID shows one with its traceback")


def _check_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _ID.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a dead letter id such as 1718000000000-0")
    return value


def _check_ids(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> Sequence[str]:
    return [_check_id(ctx, param, value) for value in values]


@dlq.command()
@click.argument("dead_id", metavar="ID", callback=_check_id)
@click.option("--json", "as_json", is_flag=True, help="A JSON object, traceback included.")
@pass_app
def show(app: App, dead_id: str, as_json: bool) -> None:
    """Show one dead letter whole: the event, its body, the error and the traceback.

    \b
    Example:
        relay dlq show 1718000000000-0
    """

    async def read(redis: Redis) -> tuple[DeadLetter | None, int]:
        return await get_dead(redis, dead_id), await redis_now_ms(redis)

    letter, now_ms = app.run(read)
    if letter is None:
        raise Failed(f"no dead letter {dead_id} in {DEAD_STREAM}")
    if as_json:
        click.echo(json.dumps(to_dict(letter, traceback=True), ensure_ascii=False))
    else:
        click.echo(render_letter(letter, now_ms))


async def _replay(
    redis: Redis,
    *,
    registry: Registry,
    tasks: str,
    ids: Sequence[str],
    handler: str | None,
    event_type: str | None,
    rate: float,
    expires_ms: int,
    rerun_effects: bool = False,
) -> ReplayReport:
    report = ReplayReport()
    letters: list[DeadLetter] = []
    if ids:
        for dead_id in dict.fromkeys(ids):
            letter = await get_dead(redis, dead_id)
            if letter is None:
                report.missing.append(dead_id)
            else:
                letters.append(letter)
    else:
        letters = [letter async for letter in iter_dead(redis) if matches(letter, handler, event_type)]
    replayable = sum(refusal(letter, registry, tasks) is None for letter in letters)
    with progress(replayable, "replaying dead letters") as advance:
        return await replay_letters(
            redis,
            letters,
            registry=registry,
            tasks=tasks,
            rate=rate,
            expires_ms=expires_ms,
            report=report,
            advance=advance,
            rerun_effects=rerun_effects,
        )


@dlq.command()
@click.argument("ids", nargs=-1, metavar="[ID]...", callback=_check_ids)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter (narrowed by --handler, --type).")
@click.option("--handler", help="With --all: only this handler's dead letters.")
@click.option("--type", "event_type", help="With --all: only this event type's.")
@rate_option
@rerun_effects_option
@pass_app
def replay(
    app: App,
    ids: tuple[str, ...],
    replay_all: bool,
    handler: str | None,
    event_type: str | None,
    rate: float,
    rerun_effects: bool,
) -> None:
    """Run dead letters again, once their handler is fixed.

    Each is enqueued for its own handler only, with its original event id (ctx["event_id"]), and
    deleted in the same atomic step, never before its job exists. The handler starts again at
    attempt 1; side effects it did under ctx["once"] are not done again unless --rerun-effects.
    A dead letter whose handler is no longer in RELAY_TASKS is left alone.

    \b
    Examples:
        relay dlq replay 1718000000000-0 1718000000001-0
        relay dlq replay --all --handler reward_voter --rate 5
    """
    if bool(ids) == replay_all:
        raise click.UsageError("give dead letter ids, or --all")
    if (handler or event_type) and not replay_all:
        raise click.UsageError("--handler and --type narrow --all; to replay given ids, leave them out")
    registry = app.handlers(require=handler)
    report = app.run(
        lambda redis: _replay(
            redis,
            registry=registry,
            tasks=app.settings.tasks,
            ids=ids,
            handler=handler,
            event_type=event_type,
            rate=rate,
            expires_ms=app.settings.retention_ms,
            rerun_effects=rerun_effects,
        )
    )
    if len(report.replayed) < 10:
        for letter in report.replayed:
            click.echo(f"replayed {letter.id}: {letter.handler} for event {letter.entry_id}")
    summary = f"{len(report.replayed)} dead letter(s) replayed"
    if report.already_queued:
        summary += f" ({report.already_queued} had been replayed already and were only deleted)"
    click.echo(summary)
    for dead_id in report.missing:
        click.echo(f"relay: no dead letter {dead_id} in {DEAD_STREAM}", err=True)
    for dead_id, reason in report.refused:
        click.echo(f"relay: not replayed {dead_id}: {reason}", err=True)
    if report.missing or report.refused:
        raise click.exceptions.Exit(1)


@dlq.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Delete those dead-lettered longer ago than this: 90s, 12h, 7d, 1h30m (0s: all).",
)
@click.option("--yes", is_flag=True, help="Delete without asking.")
@pass_app
def purge(app: App, older_than: str, yes: bool) -> None:
    """Delete old dead letters, after asking (unless --yes). What is deleted cannot be replayed.

    \b
    Examples:
        relay dlq purge --older-than 7d
        relay dlq purge --older-than 12h --yes
    """
    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None

    async def count(redis: Redis) -> tuple[int, int]:
        cutoff = max(0, await redis_now_ms(redis) - round(seconds * 1000))
        found = 0
        if cutoff > 0:  # "(0-0" is no valid end: nothing can be older than the epoch anyway
            async for _ in iter_dead(redis, end=f"({cutoff}-0"):
                found += 1
        return found, cutoff

    found, cutoff = app.run(count)
    if not found:
        click.echo(f"no dead letters older than {older_than}")
        return
    question = f"Delete {found} dead letter(s) written before {iso(cutoff)} ({older_than} ago)?"
    try:
        confirmed = yes or click.confirm(question, default=False)
    except click.Abort:  # no answer (end of input, Ctrl-C)
        confirmed = False
    if not confirmed:
        raise Failed("nothing deleted (--yes deletes without asking)")

    async def trim(redis: Redis) -> int:
        # Entry ids are the time each dead letter was written: MINID drops exactly the older ones.
        return int(await redis.xtrim(DEAD_STREAM, minid=f"{cutoff}-0", approximate=False))

    deleted = app.run(trim)
    click.echo(f"deleted {deleted} dead letter(s) older than {older_than}")
