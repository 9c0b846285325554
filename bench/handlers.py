"""Handler-side measurements: what an idle worker costs and how fast it wakes, and I/O-bound scaling.

- **Idle.** The edge and one worker run `bench.noop_tasks`; after a warm-up the worker's CPU time is
  read over ``idle_seconds`` with nothing to do (percent of one core). Then, `probes` times, the
  bench waits ``quiet_seconds`` and posts one event: ack-to-handler is the handler's start minus the
  entry id's time (the edge's XADD, just before its 2xx), as in the pipeline's latency run.
- **I/O-bound scaling.** N workers run `bench.io_tasks` (each event awaits a 50 ms answer from
  `bench.slow_server`) at ``RELAY_WORKER_CONCURRENCY`` = `concurrency` each. Once every worker has
  joined the group and is idle, the bench appends a backlog of events to the stream with the edge's
  own ingest script (the edge's CPU is not what this measures) and times until every event has
  been handled: events/s, the ratio to one worker, and the workers' CPU µs per event.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import httpx
import redis

from bench.load import Signer, review_body
from bench.pipeline import fresh_start, wait_for, warm_up
from bench.processes import (
    RELAY_APP,
    ProcessGroup,
    Redis,
    free_port,
    start_uvicorn,
    start_worker,
    wait_for_port,
)
from bench.slow_server import IO_URL_ENV
from relay.core.events import dedupe_key, parse
from relay.core.keys import EVENTS_STREAM, INGEST_SCRIPT, dedupe_redis_key
from relay.edge.signature import HEADER

IDLE_CPU_PERCENT = 1.0
"""Target: an idle worker uses at most this much of one core."""
WAKE_MS = 300.0
"""Target: after a long idle time, a handler starts within this long of the edge's 2xx."""
IO_SCALING = {2: 1.8, 4: 3.2}
"""Targets: events/s of N I/O-bound workers over one worker's."""


@dataclass(frozen=True)
class IdleRun:
    idle_seconds: float
    cpu_seconds: float
    quiet_seconds: float
    wake_ms: tuple[float, ...]
    """Ack-to-handler of each probe, after `quiet_seconds` with nothing to do."""

    @property
    def cpu_percent(self) -> float:
        return self.cpu_seconds / self.idle_seconds * 100 if self.idle_seconds else float("nan")


class PerEvent:
    """Events/s and the workers' CPU µs per event of a run with `events`, `seconds`, `workers_cpu_s`."""

    events: int
    seconds: float
    workers_cpu_s: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def us_per_event(self) -> float:
        return self.workers_cpu_s / self.events * 1e6 if self.events else 0.0


@dataclass(frozen=True)
class IoRun(PerEvent):
    workers: int
    concurrency: int
    events: int
    handled: int
    """Distinct events with a trace (must equal `events`)."""
    traces: int
    """Traces in all (more than `handled`: some event ran twice)."""
    seconds: float
    workers_cpu_s: float
    round: int = 1


def measure_idle(
    group: ProcessGroup,
    store: Redis,
    secret: bytes,
    *,
    idle_seconds: float,
    quiet_seconds: float,
    probes: int,
    nonce: int,
    env: Mapping[str, str],
) -> IdleRun:
    """One worker's idle CPU over `idle_seconds`, then `probes` wake-ups after `quiet_seconds` each."""
    client, traces = fresh_start(store, env)
    edge, port = start_uvicorn(group, "idle-edge", RELAY_APP, env)
    worker = start_worker(group, "idle-worker", env)
    url = f"http://127.0.0.1:{port}/webhook"
    signer = Signer(secret)
    wakes: list[float] = []
    try:
        warm_up(client, traces, url, secret, [worker], nonce)
        time.sleep(2)  # the last warm-up jobs end; the worker settles
        before, started = worker.cpu_seconds(), time.monotonic()
        time.sleep(idle_seconds)
        cpu, seconds = worker.cpu_seconds() - before, time.monotonic() - started
        with httpx.Client(timeout=5) as http:
            for number in range(probes):
                time.sleep(quiet_seconds)
                body = review_body(number, nonce + 1)
                response = http.post(url, content=body, headers={HEADER: signer(body).decode()})
                response.raise_for_status()
                entry: str = response.json()["id"]

                def handled(entry: str = entry) -> bool:
                    return entry in traces.starts()

                wait_for(handled, 30, "the probe's handler")
                wakes.append((traces.starts()[entry] - int(entry.split("-")[0]) / 1000) * 1000)
    finally:
        for process in (worker, edge):
            group.stop(process)
        client.close()
    return IdleRun(seconds, cpu, quiet_seconds, tuple(wakes))


def store_events(url: str, bodies: Sequence[bytes]) -> None:
    """Append `bodies` to the stream as the edge does (its ingest script), in one pipeline."""
    client = redis.Redis.from_url(url)
    try:
        script = client.register_script(INGEST_SCRIPT)
        received_ms = int(time.time() * 1000)
        with client.pipeline(transaction=False) as pipe:
            for body in bodies:
                event = parse(body)
                key = dedupe_key(event, body)
                script(
                    keys=[dedupe_redis_key(key), EVENTS_STREAM],
                    args=[3600, event.event, body, received_ms, key],
                    client=pipe,
                )
            pipe.execute()
    finally:
        client.close()


def measure_io(
    group: ProcessGroup,
    store: Redis,
    workers: int,
    secret: bytes,
    *,
    concurrency: int,
    events: int,
    nonce: int,
    env: Mapping[str, str],
    round: int = 1,
) -> IoRun:
    """`workers` I/O-bound workers at `concurrency` each draining `events` stored at once."""
    port = free_port()
    slow = group.start(
        f"slow-server-{workers}-{round}", [sys.executable, "-m", "bench.slow_server", str(port)]
    )
    wait_for_port(port, slow.popen, slow.log)
    run_env = {
        **env,
        "RELAY_TASKS": "bench.io_tasks",
        "RELAY_WORKER_CONCURRENCY": str(concurrency),
        IO_URL_ENV: f"http://127.0.0.1:{port}",
    }
    client, traces = fresh_start(store, run_env)
    edge, edge_port = start_uvicorn(group, f"io-edge-{workers}-{round}", RELAY_APP, run_env)
    started = [start_worker(group, f"io-{workers}-{n}-round-{round}", run_env) for n in range(1, workers + 1)]
    try:
        warm_up(client, traces, f"http://127.0.0.1:{edge_port}/webhook", secret, started, nonce)
        time.sleep(0.5)
        bodies = [review_body(number, nonce + 1) for number in range(events)]
        cpu_before = sum(w.cpu_seconds() for w in started)
        begin = time.monotonic()
        store_events(store.url, bodies)
        wait_for(lambda: traces.count() >= events, 300, f"{events} I/O-bound events to be handled")
        seconds = time.monotonic() - begin
        workers_cpu = sum(w.cpu_seconds() for w in started) - cpu_before
        time.sleep(0.2)  # a second run of some event would show up here
        handled, lines = len(traces.starts()), traces.count()
    finally:
        for process in [*started, edge, slow]:
            group.stop(process)
        client.close()
    return IoRun(workers, concurrency, events, handled, lines, seconds, workers_cpu, round)


# -- the report --------------------------------------------------------------------------------


def io_median(runs: Sequence[IoRun], workers: int) -> IoRun | None:
    mine = sorted((r for r in runs if r.workers == workers), key=lambda r: r.rate)
    return mine[(len(mine) - 1) // 2] if mine else None


def targets(idle: IdleRun | None, io: Sequence[IoRun]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for this module's targets."""
    out = []
    if idle is not None:
        out.append(
            (
                f"idle worker <= {IDLE_CPU_PERCENT:g}% of a core ({idle.idle_seconds:.0f} s)",
                f"{idle.cpu_percent:.2f}%",
                idle.cpu_percent <= IDLE_CPU_PERCENT,
            )
        )
        if idle.wake_ms:
            worst = max(idle.wake_ms)
            out.append(
                (
                    f"ack-to-handler <= {WAKE_MS:g} ms after {idle.quiet_seconds:g} s idle",
                    f"max {worst:.1f} ms of {len(idle.wake_ms)} ({', '.join(f'{ms:.1f}' for ms in idle.wake_ms)})",
                    worst <= WAKE_MS,
                )
            )
    one = io_median(io, 1)
    for count, goal in IO_SCALING.items():
        run = io_median(io, count)
        if one and run:
            ratio = run.rate / one.rate if one.rate else float("nan")
            out.append((f"I/O-bound, {count} workers >= {goal:g}x 1 worker", f"{ratio:.2f}x", ratio >= goal))
    for run in io:
        if run.handled != run.events or run.traces != run.events:
            out.append(
                (
                    f"I/O-bound, {run.workers} worker(s): every event handled once",
                    f"{run.handled} of {run.events} handled, {run.traces} runs",
                    False,
                )
            )
    return out


def rounds_text(io: Sequence[IoRun]) -> str:
    """Each worker count's rounds, when there were several: what the median was taken from
    (as `bench.report.pipeline_rounds_text` does for the pipeline)."""
    lines = []
    for count in dict.fromkeys(r.workers for r in io):
        runs = [r for r in io if r.workers == count]
        if len(runs) > 1:
            each = ", ".join(f"{r.rate:,.0f} events/s at {r.us_per_event:,.0f} µs" for r in runs)
            lines.append(f"- {count} worker(s), by round: {each}")
    return "\n".join(lines)


def table(idle: IdleRun | None, io: Sequence[IoRun]) -> str:
    lines = []
    if io:
        one = io_median(io, 1)
        lines += [
            "| I/O-bound workers | concurrency each | events | events/s | vs 1 worker | workers CPU µs/event |",
            "|---|---|---|---|---|---|",
        ]
        for count in dict.fromkeys(r.workers for r in io):
            run = io_median(io, count)
            if run is None:
                continue
            ratio = f"{run.rate / one.rate:.2f}x" if one and one.rate else "-"
            lines.append(
                f"| {count} | {run.concurrency} | {run.events} | {run.rate:,.0f} | {ratio} | {run.us_per_event:,.0f} |"
            )
        lines.append("")
        by_round = rounds_text(io)
        if by_round:
            lines += [
                "Each I/O-bound worker count's median round is shown, and ratios are between medians:",
                "",
                by_round,
                "",
            ]
    if idle is not None:
        wake = statistics.median(idle.wake_ms) if idle.wake_ms else float("nan")
        lines += [
            "| idle worker CPU | over | ack-to-handler after idle, median | max |",
            "|---|---|---|---|",
            f"| {idle.cpu_percent:.2f}% of a core | {idle.idle_seconds:.0f} s | {wake:.1f} ms | "
            f"{max(idle.wake_ms, default=float('nan')):.1f} ms |",
            "",
        ]
    return "\n".join(lines)


def to_json(idle: IdleRun | None, io: Sequence[IoRun]) -> dict[str, object]:
    return {
        "idle": None if idle is None else {**asdict(idle), "cpu_percent": idle.cpu_percent},
        "io": [{**asdict(r), "rate": r.rate, "us_per_event": r.us_per_event} for r in io],
    }
