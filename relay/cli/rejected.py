"""``relay rejected``: why were requests refused? The edge's records, newest first (`relay.edge.rejections`)."""

from __future__ import annotations

import json

import click
from redis.asyncio import Redis

from relay.cli.common import App, pass_app
from relay.core.redis import redis_now_ms
from relay.edge import rejections
from relay.edge.rejections import Rejection
from relay.ops.rejected import hint, shown_body, to_dict
from relay.ops.timespec import ago, iso


def render(rejection: Rejection, now_ms: int) -> str:
    told = hint(rejection)
    lines = [
        f"{iso(rejection.received_ms)} ({ago(rejection.received_ms, now_ms)})  {rejection.source}  "
        f"{rejection.status} {rejection.reason}" + (f"  ({told})" if told else ""),
        f"  from {rejection.client or 'unknown'}, {rejection.size} bytes received",
    ]
    lines += [f"  {name}: {value}" for name, value in rejection.headers]
    lines.append(f"  body: {shown_body(rejection.body_head) or '(empty)'}")
    if rejection.skipped:
        lines.append(f"  ({rejection.skipped} more refused just before this one, not recorded)")
    return "\n".join(lines)


@click.command(short_help="The latest requests the edge refused, and why.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True, help="How many to show.")
@click.option("--json", "as_json", is_flag=True, help="A JSON object with the totals and the records.")
@pass_app
def rejected(app: App, limit: int, as_json: bool) -> None:
    """Show the latest requests the edge refused, newest first: when, which sender's route, why (a
    signature refusal says what failed: missing header, stale timestamp, wrong signature...), from
    where, with which headers and the first bytes of the body.

    Every refusal is counted; a few per second are recorded (the latest 1000 or so are kept), so
    a flood of forgeries costs Redis little. Credential headers are never recorded and the
    signature is cut short. A 503 (Redis unavailable) cannot be recorded.

    \b
    Examples:
        relay rejected
        relay rejected --limit 50 --json
    """

    async def read(redis: Redis) -> tuple[list[Rejection], tuple[int, int], int]:
        return (
            await rejections.recent(redis, limit),
            await rejections.totals(redis),
            await redis_now_ms(redis),
        )

    records, (refused, kept), now_ms = app.run(read)
    if as_json:
        document = {"refused": refused, "recorded": kept, "latest": [to_dict(r) for r in records]}
        click.echo(json.dumps(document, ensure_ascii=False))
        return
    click.echo(f"{refused} request(s) refused in all, {kept} recorded")
    for rejection in records:
        click.echo("")
        click.echo(render(rejection, now_ms))
