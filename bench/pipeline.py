"""The pipeline phase: the edge plus N arq workers running `bench.noop_tasks`, end to end.

Two measurements per worker count, on the same processes:

- **Throughput.** wrk posts new events for a few seconds while the workers run. The rate is the number
  of events stored divided by the time from the first entry's arrival (its stream id is the edge's
  Redis clock at XADD) to the moment the bench sees the last handler's trace. Events that pile up in
  the stream while wrk runs are part of it: that is the stream doing its job as the buffer.
- **Latency.** A paced sender (open loop: request i leaves at i/rate whatever happened before) posts
  at a fixed rate and keeps the entry id of each 2xx. The handler records its start; minus the time in
  the entry id (the XADD, just before the 2xx) that is the ack-to-handler latency. At 200 events/s
  Python sends easily, and wrk cannot pace.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from bench.load import Requests, Signer, review_body, run_wrk
from bench.processes import RELAY_APP, Process, ProcessGroup, Redis, start_uvicorn, start_worker
from bench.store import Store
from bench.traces import TRACE_DIR_ENV, Traces
from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM
from relay.edge.signature import HEADER

_POLL = 0.01
T = TypeVar("T")


@dataclass(frozen=True)
class Throughput:
    events: int
    seconds: float
    """First entry stored to last handler seen done."""
    wrk_raw: str
    edge_cpu_s: float
    workers_cpu_s: float
    redis_cpu_s: float
    redis_calls: dict[str, int]
    """Redis commands run during the measurement, by name (INFO commandstats)."""
    wrk_cpu_s: float = 0.0
    """The load generator's CPU, on the same cores as everything else (0 where not measured)."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def us_per_event(self, cpu_s: float) -> float:
        return cpu_s / self.events * 1e6 if self.events else 0.0


@dataclass(frozen=True)
class Latency:
    rate: float
    achieved_rate: float
    """Requests sent per second as measured by the sender (it can fall behind on a busy machine)."""
    sent: int
    acked: int
    """2xx answers; every one must reach the handler."""
    handled: int
    latencies_ms: tuple[float, ...]

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)


@dataclass(frozen=True)
class PipelineRun:
    workers: int
    throughput: Throughput
    latency: Latency
    round: int = 1
    """Which round of the bench this run was (each round measures every worker count once)."""


def median_by(items: Sequence[T], key: Callable[[T], float]) -> T | None:
    """The item whose `key` is the median (the lower of the two middle ones for an even count).

    A round stands whole for its server or worker count: its rate, latency and raw output together.
    """
    if not items:
        return None
    ordered = sorted(items, key=key)
    return ordered[(len(ordered) - 1) // 2]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the smallest value with at least p% of values at or below it)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * p / 100))
    return ordered[rank - 1]


def fresh_start(store: Redis, env: Mapping[str, str]) -> tuple[Store, Traces]:
    """A client of `store`, emptied, and the handlers' traces counted from now on: a run's clean slate."""
    client = Store(store.url)
    client.flush()
    traces = Traces(Path(env[TRACE_DIR_ENV]))
    traces.clear()
    return client, traces


def measure_pipeline(
    group: ProcessGroup,
    store: Redis,
    workers: int,
    requests: Requests,
    secret: bytes,
    *,
    load_seconds: float,
    load_connections: int,
    latency_rate: float,
    latency_seconds: float,
    nonce: int,
    env: Mapping[str, str],
    round: int = 1,
) -> PipelineRun:
    """Start the edge and `workers` workers on an empty Redis, measure both, stop them all."""
    client, traces = fresh_start(store, env)
    edge, port = start_uvicorn(group, "pipeline-edge", RELAY_APP, env)
    started = [start_worker(group, f"worker-{workers}-{n}", env) for n in range(1, workers + 1)]
    url = f"http://127.0.0.1:{port}/webhook"
    try:
        warm_up(client, traces, url, secret, started, nonce)
        throughput = _throughput(
            client,
            traces,
            store,
            url,
            requests,
            edge,
            started,
            seconds=load_seconds,
            connections=load_connections,
        )
        latency = asyncio.run(_latency(traces, url, secret, latency_rate, latency_seconds, nonce + 1))
    finally:
        for process in [*started, edge]:
            group.stop(process)
        client.close()
    return PipelineRun(workers, throughput, latency, round)


def warm_up(
    client: Store, traces: Traces, url: str, secret: bytes, workers: list[Process], nonce: int
) -> None:
    """Wait until every worker has joined the consumer group, and one event has gone end to end."""
    deadline = time.monotonic() + 30
    while _consumers(client) < len(workers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {_consumers(client)} of {len(workers)} workers joined the group")
        for worker in workers:
            if worker.popen.poll() is not None:
                raise RuntimeError(f"{worker.name} exited with {worker.popen.returncode}: see {worker.log}")
        time.sleep(0.05)
    bodies = [review_body(number, nonce) for number in range(10 * len(workers))]
    signer = Signer(secret)
    with httpx.Client(timeout=5) as http:
        for body in bodies:
            http.post(url, content=body, headers={HEADER: signer(body).decode()}).raise_for_status()
    wait_for(lambda: traces.count() >= len(bodies), 30, "warm-up events to be handled")
    traces.clear()


def _consumers(client: Store) -> int:
    return client.consumers(EVENTS_STREAM, CONSUMER_GROUP)


def _throughput(
    client: Store,
    traces: Traces,
    store: Redis,
    url: str,
    requests: Requests,
    edge: Process,
    workers: list[Process],
    *,
    seconds: float,
    connections: int,
) -> Throughput:
    last_id, length_before = client.last_id(EVENTS_STREAM), client.xlen(EVENTS_STREAM)
    cpu = [edge.cpu_seconds(), sum(w.cpu_seconds() for w in workers), store.process.cpu_seconds()]
    calls_before = client.command_calls()
    result = run_wrk(url, requests, connections=connections, seconds=seconds)
    first = client.first_after(EVENTS_STREAM, last_id)
    if first is None:
        raise RuntimeError(f"wrk stored no event:\n{result.raw}")
    first_ms = int(first.split(b"-")[0])

    # Handlers keep running after wrk stops; wait (bounded) for the last one. The stream can still
    # grow for a few ms as the edge finishes requests wrk left in flight, hence the second condition.
    deadline = time.monotonic() + 300
    while True:
        events = client.xlen(EVENTS_STREAM) - length_before
        handled = traces.count()
        if handled >= events and client.xlen(EVENTS_STREAM) - length_before == events:
            done = time.time()
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {handled} of {events} events handled after 300 s")
        time.sleep(_POLL)
    edge_cpu = edge.cpu_seconds() - cpu[0]
    workers_cpu = sum(w.cpu_seconds() for w in workers) - cpu[1]
    redis_cpu = store.process.cpu_seconds() - cpu[2]
    calls = client.command_calls()
    delta = {
        name: n - calls_before.get(name, 0) for name, n in calls.items() if n > calls_before.get(name, 0)
    }
    return Throughput(
        events, done - first_ms / 1000, result.raw, edge_cpu, workers_cpu, redis_cpu, delta, result.cpu_s
    )


async def _latency(
    traces: Traces, url: str, secret: bytes, rate: float, seconds: float, nonce: int
) -> Latency:
    traces.clear()
    count = max(int(rate * seconds), 1)
    bodies = [review_body(number, nonce) for number in range(count)]
    signer = Signer(secret)
    acked: list[str] = []

    async def post(http: httpx.AsyncClient, body: bytes) -> None:
        try:
            response = await http.post(url, content=body, headers={HEADER: signer(body).decode()})
        except httpx.HTTPError:
            return
        if 200 <= response.status_code < 300:
            acked.append(response.json()["id"])

    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=5, limits=limits) as http:
        start = loop.time()
        tasks = []
        for index, body in enumerate(bodies):
            # Open loop: request i leaves at start + i/rate, even if earlier ones are still waiting.
            await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
            tasks.append(asyncio.create_task(post(http, body)))
        sending = loop.time() - start
        await asyncio.gather(*tasks)

    wait_for(lambda: traces.count() >= len(acked), 60, "paced events to be handled")
    starts = traces.starts()
    # The ack is the entry's own id: Redis's clock, in whole ms, when the edge's XADD ran, just
    # before its 2xx went out. The floor makes each latency up to 1 ms longer, never shorter. (The
    # sender's own receive time is no good clock: on two busy cores it often reads the 2xx after
    # the handler has already started.)
    latencies = tuple(
        (starts[entry] - int(entry.split("-")[0]) / 1000) * 1000 for entry in acked if entry in starts
    )
    achieved = (count - 1) / sending if count > 1 and sending > 0 else rate
    return Latency(rate, achieved, count, len(acked), len(latencies), latencies)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` every 10 ms until it holds; RuntimeError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(_POLL)
