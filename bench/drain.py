"""A diagnostic for a missed scaling target: 1 and 2 workers draining a backlog, nothing else running.

The pipeline's throughput is measured end to end, so the edge and wrk share the cores with the
workers. When 2 workers fall short of the target multiple of 1, this tells whether the workers
themselves scale: wrk fills the stream through the edge for a moment, the edge stops, then N
workers start on the backlog. The rate is the events handled from the moment the first handler
ran to the last one, over that time (a worker's start-up is left out), and so are the CPU figures.

Not a target and not what users run (a relay without its edge): it separates what the workers and
Redis cost from what the edge and the load generator take from them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench.load import Requests, run_wrk
from bench.pipeline import fresh_start, wait_for
from bench.processes import RELAY_APP, ProcessGroup, Redis, start_uvicorn, start_worker
from relay.core.keys import EVENTS_STREAM

_DEADLINE_S = 300
"""Seconds the workers may take, from their start, to run the first handler and drain the backlog."""


@dataclass(frozen=True)
class DrainRun:
    workers: int
    backlog: int
    """Events in the stream when the workers started."""
    events: int
    """Events handled after the first one, over `seconds`."""
    seconds: float
    workers_cpu_s: float
    redis_cpu_s: float
    round: int = 1

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def us_per_event(self, cpu_s: float) -> float:
        return cpu_s / self.events * 1e6 if self.events else 0.0


def measure_drain(
    group: ProcessGroup,
    store: Redis,
    workers: int,
    requests: Requests,
    *,
    fill_seconds: float,
    connections: int,
    env: Mapping[str, str],
    round: int = 1,
) -> DrainRun:
    """Fill an emptied Redis through the edge, stop it, and time `workers` workers draining it."""
    client, traces = fresh_start(store, env)
    edge, port = start_uvicorn(group, "drain-edge", RELAY_APP, env)
    try:
        run_wrk(f"http://127.0.0.1:{port}/webhook", requests, connections=connections, seconds=fill_seconds)
    finally:
        group.stop(edge)  # a graceful stop: what it answered is stored
    backlog = client.xlen(EVENTS_STREAM)
    client.close()
    started = [start_worker(group, f"drain-{workers}-{n}-round-{round}", env) for n in range(1, workers + 1)]
    try:
        deadline = time.monotonic() + _DEADLINE_S
        wait_for(lambda: traces.count() > 0, _DEADLINE_S, "the first handler to run")
        first, first_handled = time.monotonic(), traces.count()
        cpu_at_first = sum(w.cpu_seconds() for w in started), store.process.cpu_seconds()
        wait_for(lambda: traces.count() >= backlog, deadline - first, f"the backlog of {backlog} to drain")
        seconds, handled = time.monotonic() - first, traces.count()
        workers_cpu = sum(w.cpu_seconds() for w in started) - cpu_at_first[0]
        redis_cpu = store.process.cpu_seconds() - cpu_at_first[1]
    finally:
        for worker in started:
            group.stop(worker)
    return DrainRun(workers, backlog, handled - first_handled, seconds, workers_cpu, redis_cpu, round)
