"""``relay rejected``: why were requests refused? The edge's records, newest first (`relay.edge.rejections`)."""

from __future__ import annotations

import json
from typing import Any

import click
from redis.asyncio import Redis

from relay.cli.common import App, pass_app, redis_now_ms
from relay.cli.timespec import ago, iso
from relay.edge import rejections
from relay.edge.rejections import Rejection

HINTS = {
    "invalid_signature": "signed with another secret? compare RELAY_SECRET with your listing's key",
    "invalid_signature topgg": "compare RELAY_TOPGG_SECRET (whs_...) or RELAY_TOPGG_AUTHORIZATION with top.gg's",
    "invalid_signature standard": "compare RELAY_STANDARD_WEBHOOKS_SECRET with the sender's whsec_... secret",
    "invalid_body": "not a JSON object",
    "invalid_event": "a known event type with invalid fields",
    "body_too_large": "over RELAY_MAX_BODY_BYTES",
    "body_timeout": "the body arrived slower than RELAY_BODY_TIMEOUT",
    "forbidden_source": "the address is not in RELAY_ALLOWED_SOURCES",
}


def shown_body(head: bytes) -> str:
    """The body's first bytes as one printable line: text as is, anything else escaped."""
    text = head.decode(errors="backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def to_dict(rejection: Rejection) -> dict[str, Any]:
    return {
        "id": rejection.id,
        "source": rejection.source,
        "received_ms": rejection.received_ms,
        "status": rejection.status,
        "reason": rejection.reason,
        "size": rejection.size,
        "client": rejection.client,
        "headers": [list(pair) for pair in rejection.headers],
        "body_head": rejection.body_head.decode(errors="replace"),
        "skipped_before": rejection.skipped,
    }


def hint(rejection: Rejection) -> str | None:
    """What to check, by the refusal's code (a signature refusal: by its sender too)."""
    code = rejection.reason.partition(":")[0]
    return HINTS.get(f"{code} {rejection.source}") or HINTS.get(code)


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
