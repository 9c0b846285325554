"""Forwarding throughput: one worker with no handler code and ``RELAY_FORWARD_URL`` set, delivering a
backlog to a local receiver that answers at once (`bench.slow_server` with no delay).

Once the worker has joined the group and delivered a warm-up, the bench appends `events` events with
the edge's ingest script and times until the worker's outcome recorder has counted every delivery
(``relay:handled``, flushed every 0.1 s): forwarded events/s, and the worker's CPU µs per event
(signing, the HTTP request, the job's bookkeeping).
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
from worker.forward.destination import Destination

WARM_UP_EVENTS = 20


@dataclass(frozen=True)
class ForwardRun(PerEvent):
    events: int
    concurrency: int
    """``RELAY_FORWARD_CONCURRENCY``: requests in flight to the destination."""
    seconds: float
    workers_cpu_s: float
    """The one worker's."""
    round: int = 1


def _delivered(client: redis.Redis, name: str) -> int:
    value = cast(bytes | None, client.hget(HANDLED_TOTALS, name))
    return int(value or 0)


def _joined(client: redis.Redis) -> bool:
    try:
        return bool(client.xinfo_consumers(EVENTS_STREAM, CONSUMER_GROUP))
    except redis.ResponseError:
        return False


def measure_forward(
    group: ProcessGroup, store: Redis, *, events: int, nonce: int, env: Mapping[str, str], round: int = 1
) -> ForwardRun:
    """One worker forwarding `events` stored at once to a receiver that answers at once."""
    port = free_port()
    receiver = group.start(
        f"forward-receiver-{round}", [sys.executable, "-m", "bench.slow_server", str(port), "0"]
    )
    wait_for_port(port, receiver.popen, receiver.log)
    url = f"http://127.0.0.1:{port}/relay"
    run_env = {
        **env,
        "RELAY_TASKS": "bench.forward_tasks",
        "RELAY_FORWARD_URL": url,
        "RELAY_FORWARD_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    concurrency = int(run_env.get("RELAY_FORWARD_CONCURRENCY", "8"))
    store_client, _ = fresh_start(store, run_env)
    client = redis.Redis.from_url(store.url)
    name = Destination(url).name
    worker = start_worker(group, f"forward-worker-{round}", run_env)
    try:
        wait_for(lambda: _joined(client), 30, "the forwarding worker to join the group")
        store_events(store.url, [review_body(n, nonce) for n in range(WARM_UP_EVENTS)])
        wait_for(lambda: _delivered(client, name) >= WARM_UP_EVENTS, 60, "the warm-up deliveries")
        time.sleep(0.5)
        bodies = [review_body(n, nonce + 1) for n in range(events)]
        cpu_before = worker.cpu_seconds()
        begin = time.monotonic()
        store_events(store.url, bodies)
        wait_for(lambda: _delivered(client, name) >= WARM_UP_EVENTS + events, 300, f"{events} deliveries")
        seconds = time.monotonic() - begin
        cpu = worker.cpu_seconds() - cpu_before
    finally:
        for process in (worker, receiver):
            group.stop(process)
        client.close()
        store_client.close()
    return ForwardRun(events, concurrency, seconds, cpu, round)


def median(runs: Sequence[ForwardRun]) -> ForwardRun | None:
    ranked = sorted(runs, key=lambda r: r.rate)
    return ranked[(len(ranked) - 1) // 2] if ranked else None


def table(runs: Sequence[ForwardRun]) -> str:
    run = median(runs)
    if run is None:
        return ""
    lines = [
        "| forwarding, 1 worker | in flight | events | events/s | worker CPU µs/event |",
        "|---|---|---|---|---|",
        f"| receiver answering at once | {run.concurrency} | {run.events} | {run.rate:,.0f} | {run.us_per_event:,.0f} |",
        "",
    ]
    if len(runs) > 1:
        each = ", ".join(f"{r.rate:,.0f} events/s at {r.us_per_event:,.0f} µs" for r in runs)
        lines += [f"Forwarding, the median round of: {each}.", ""]
    return "\n".join(lines)


def to_json(runs: Sequence[ForwardRun]) -> list[dict[str, object]]:
    return [{**asdict(r), "rate": r.rate, "us_per_event": r.us_per_event} for r in runs]
