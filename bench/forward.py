"""Forwarding throughput: one worker with no handler code and ``RELAY_FORWARD_URL`` set, delivering a
backlog to a local receiver that answers at once (`bench.slow_server` with no delay).

Once the worker has joined the group and delivered a warm-up, the bench appends `events` events with
the edge's ingest script and times until the worker's outcome recorder has counted every delivery
(``relay:handled``, flushed every 0.1 s): forwarded events/s, and the worker's CPU µs per event
(signing, the HTTP request, the job's bookkeeping). In each round the same is first measured with
`bench.noop_tasks` instead (a handler that does nothing), so that the ratio of the two CPU figures
says what forwarding adds to the job machinery, measured in one run.
"""

from __future__ import annotations

import base64
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import cast

import redis

from bench.handlers import PerEvent, store_events
from bench.load import review_body
from bench.pipeline import fresh_start, wait_for
from bench.processes import ProcessGroup, Redis, free_port, start_worker, wait_for_port
from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM, HANDLED_TOTALS

WARM_UP_EVENTS = 20
FORWARD = "forwarding"
NOOP = "no-op handler"


@dataclass(frozen=True)
class ForwardRun(PerEvent):
    events: int
    concurrency: int
    """``RELAY_FORWARD_CONCURRENCY``: requests in flight to the destination."""
    seconds: float
    workers_cpu_s: float
    """The one worker's."""
    round: int = 1
    kind: str = FORWARD
    """`FORWARD`, or `NOOP` for the no-op handler measured beside it."""


def _handled(client: redis.Redis) -> int:
    values = cast(list[bytes], client.hvals(HANDLED_TOTALS))
    return sum(int(value) for value in values)


def _joined(client: redis.Redis) -> bool:
    try:
        return bool(client.xinfo_consumers(EVENTS_STREAM, CONSUMER_GROUP))
    except redis.ResponseError:
        return False


def measure_forward(
    group: ProcessGroup,
    store: Redis,
    *,
    events: int,
    nonce: int,
    env: Mapping[str, str],
    round: int = 1,
    kind: str = FORWARD,
) -> ForwardRun:
    """One worker forwarding `events` stored at once to a receiver that answers at once; with
    ``kind=NOOP``, the same worker running `bench.noop_tasks` instead, no receiver."""
    receiver = None
    run_env = {**env, "RELAY_TASKS": "bench.noop_tasks"}
    if kind == FORWARD:
        port = free_port()
        command = [sys.executable, "-m", "bench.slow_server", str(port), "0"]
        receiver = group.start(f"forward-receiver-{round}", command)
        wait_for_port(port, receiver.popen, receiver.log)
        run_env |= {
            "RELAY_TASKS": "bench.forward_tasks",
            "RELAY_FORWARD_URL": f"http://127.0.0.1:{port}/relay",
            "RELAY_FORWARD_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        }
    concurrency = int(run_env.get("RELAY_FORWARD_CONCURRENCY", "8"))
    store_client, _ = fresh_start(store, run_env)
    client = redis.Redis.from_url(store.url)
    worker = start_worker(group, f"forward-worker-{round}-{kind.split()[0]}", run_env)
    try:
        wait_for(lambda: _joined(client), 30, "the worker to join the group")
        store_events(store.url, [review_body(n, nonce) for n in range(WARM_UP_EVENTS)])
        wait_for(lambda: _handled(client) >= WARM_UP_EVENTS, 60, "the warm-up events")
        time.sleep(0.5)
        bodies = [review_body(n, nonce + 1) for n in range(events)]
        cpu_before = worker.cpu_seconds()
        begin = time.monotonic()
        store_events(store.url, bodies)
        wait_for(lambda: _handled(client) >= WARM_UP_EVENTS + events, 300, f"{events} events ({kind})")
        seconds = time.monotonic() - begin
        cpu = worker.cpu_seconds() - cpu_before
    finally:
        for process in (worker, receiver):
            if process is not None:
                group.stop(process)
        client.close()
        store_client.close()
    return ForwardRun(events, concurrency, seconds, cpu, round, kind)


def median(runs: Sequence[ForwardRun], kind: str = FORWARD) -> ForwardRun | None:
    ranked = sorted((r for r in runs if r.kind == kind), key=lambda r: r.rate)
    return ranked[(len(ranked) - 1) // 2] if ranked else None


def table(runs: Sequence[ForwardRun]) -> str:
    forward, noop = median(runs, FORWARD), median(runs, NOOP)
    if forward is None:
        return ""
    lines = [
        "| 1 worker, a backlog of | in flight | events | events/s | worker CPU µs/event |",
        "|---|---|---|---|---|",
    ]
    for run, what in (
        (noop, "no-op handler (bench.noop_tasks)"),
        (forward, "forwarding, receiver answering at once"),
    ):
        if run is not None:
            in_flight = run.concurrency if run.kind == FORWARD else "-"
            lines.append(
                f"| {what} | {in_flight} | {run.events} | {run.rate:,.0f} | {run.us_per_event:,.0f} |"
            )
    lines.append("")
    if noop is not None and noop.us_per_event:
        lines += [
            f"Forwarding costs {forward.us_per_event / noop.us_per_event:.2f}x the worker CPU per event of "
            "the no-op handler (medians of the same run).",
            "",
        ]
    for kind in (NOOP, FORWARD):
        mine = [r for r in runs if r.kind == kind]
        if len(mine) > 1:
            each = ", ".join(f"{r.rate:,.0f} events/s at {r.us_per_event:,.0f} µs" for r in mine)
            lines += [f"- {kind}, by round: {each}"]
    lines.append("")
    return "\n".join(lines)


def to_json(runs: Sequence[ForwardRun]) -> list[dict[str, object]]:
    return [{**asdict(r), "rate": r.rate, "us_per_event": r.us_per_event} for r in runs]
