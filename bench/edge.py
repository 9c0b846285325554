"""The edge phase: the ceiling, the baseline and the relay edge under the same wrk load, one at a time.

The servers are measured in rounds (ceiling, baseline, relay; again; again): consecutive runs of the
same server on these shared machines differ by up to a fifth, and interleaving keeps a slow spell
from landing on one server only. A server's figures are those of its median round by throughput
(`median_run`); every round's raw output is kept.

Each server runs alone in one uvicorn process against the bench's Redis. Before every measured run the
Redis is emptied, so the stream entries counted after the run are exactly the ones the run stored.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.keys import BASELINE_STREAM
from bench.load import Requests, WrkResult, run_wrk
from bench.pipeline import median_by, percentile
from bench.processes import RELAY_APP, ProcessGroup, Redis, start_uvicorn
from bench.store import Store
from relay.cli.devrun import EDGE_LIMITS
from relay.core.keys import EVENTS_STREAM


@dataclass(frozen=True)
class Server:
    name: str
    app: str
    stream: str | None
    """The stream each 2xx must have added an entry to; None when the server stores nothing."""
    about: str
    http: tuple[str, ...] = ("--http", "httptools")
    """uvicorn's HTTP flags for it."""


CEILING = Server("ceiling", "bench.ceiling_app:app", None, "bare Starlette route, returns 200")
BASELINE = Server("baseline", "bench.baseline_app:app", BASELINE_STREAM, "naive FastAPI receiver")
RELAY = Server("relay", RELAY_APP, EVENTS_STREAM, "the relay edge, as shipped", EDGE_LIMITS)
RELAY_HTTPTOOLS = Server(
    "relay-httptools",
    RELAY_APP,
    EVENTS_STREAM,
    "the relay edge under uvicorn's own --http httptools, the same limits otherwise",
    ("--http", "httptools", *EDGE_LIMITS[2:]),
)
RELAY_TWO_WRITES = Server(
    "relay-two-writes",
    RELAY_APP,
    EVENTS_STREAM,
    "the relay edge's protocol writing each answer's head and body apart, as uvicorn does (bench.two_writes)",
    ("--http", "bench.two_writes:TwoWritesProtocol", *EDGE_LIMITS[2:]),
)
"""Not measured by default: ``--servers ...,relay-two-writes`` prices the edge's one write per answer."""
SERVERS = {server.name: server for server in (CEILING, BASELINE, RELAY, RELAY_HTTPTOOLS, RELAY_TWO_WRITES)}

BEFORE = "relay-before"
"""The relay edge as of another git revision (``--before REF``): `relay_at`."""


def relay_at(ref: str, directory: Path) -> Server:
    """The relay edge as of git `ref`, so that one run measures an edge before and after a change.

    Its ``relay/`` is exported into `directory` and uvicorn imports it from there (``--app-dir``),
    with this revision's flags and everything else (dependencies, bench) of this checkout.
    """
    directory.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    tar = directory / "relay.tar"
    for command in (
        ["git", "-C", str(root), "archive", "--output", str(tar), ref, "relay"],
        ["tar", "-xf", str(tar), "-C", str(directory)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"cannot export relay/ as of {ref}: {done.stderr.strip()}")
    tar.unlink()
    return Server(
        BEFORE,
        RELAY_APP,
        EVENTS_STREAM,
        f"the relay edge as of {ref}, the same flags",
        (*EDGE_LIMITS, "--app-dir", str(directory)),
    )


@dataclass(frozen=True)
class EdgeRun:
    """One wrk run against one server, with what the server stored and the CPU it and Redis used."""

    server: str
    wrk: WrkResult
    entries: int | None
    server_cpu_s: float
    redis_cpu_s: float
    round: int = 1
    """Which round of the bench this run was (each round measures every server once)."""
    edge_ms: tuple[float, float] | None = None
    """The relay's own p50 and p99, in ms, from its request log: the end of a request's head to its
    answer. What wrk measures beyond that is spent in the sockets and in wrk. None for other servers,
    or when the log has no request lines (``RELAY_LOG_LEVEL`` above INFO)."""

    @property
    def entries_match(self) -> bool | None:
        """Every 2xx stored exactly one entry, and nothing was stored that was not sent.

        Requests still in flight when wrk stops were sent but never answered; the server may or may
        not have stored them, so the entries may exceed the 2xx count by at most that many.
        """
        if self.entries is None:
            return None
        return 0 <= self.entries - self.wrk.ok <= self.wrk.unanswered

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s / self.wrk.requests * 1e6 if self.wrk.requests else 0.0

    @property
    def wrk_us_per_request(self) -> float:
        return self.wrk.cpu_s / self.wrk.requests * 1e6 if self.wrk.requests else 0.0

    @property
    def redis_us_per_request(self) -> float:
        return self.redis_cpu_s / self.wrk.requests * 1e6 if self.wrk.requests else 0.0


def measure_server(
    group: ProcessGroup,
    store: Redis,
    server: Server,
    requests: Requests,
    *,
    connections: Sequence[int],
    seconds: float,
    warmup_seconds: float,
    env: Mapping[str, str] | None = None,
    round: int = 1,
) -> list[EdgeRun]:
    """Start `server`, warm it up, run wrk once per connection count, stop it."""
    process, port = start_uvicorn(group, server.name, server.app, env, http=server.http)
    url = f"http://127.0.0.1:{port}/webhook"
    client = Store(store.url)
    runs = []
    try:
        if warmup_seconds > 0:
            client.flush()
            run_wrk(url, requests, connections=max(connections), seconds=warmup_seconds)
            _settle(client, server.stream)
        for count in connections:
            client.flush()
            logged = process.log.stat().st_size
            server_cpu, redis_cpu = process.cpu_seconds(), store.process.cpu_seconds()
            result = run_wrk(url, requests, connections=count, seconds=seconds)
            server_cpu = process.cpu_seconds() - server_cpu
            redis_cpu = store.process.cpu_seconds() - redis_cpu
            entries = _settle(client, server.stream)  # by then the edge has logged every answer
            edge_ms = _edge_ms(process.log, logged) if server.app == RELAY_APP else None
            runs.append(EdgeRun(server.name, result, entries, server_cpu, redis_cpu, round, edge_ms))
    finally:
        client.close()
        group.stop(process)
    return runs


_TEXT_LINE = re.compile(rb" relay\.edge\.webhook: webhook outcome=.* ms=([0-9.]+)$", re.MULTILINE)
_JSON_LINE = re.compile(
    rb'"logger": "relay\.edge\.webhook", "message": "webhook", .*"ms": ([0-9.]+)\}$', re.MULTILINE
)


def request_log_ms(log: bytes) -> list[float]:
    """The ``ms`` of every request line the relay edge logged (text or JSON format), in order."""
    return [float(ms) for pattern in (_TEXT_LINE, _JSON_LINE) for ms in pattern.findall(log)]


def _edge_ms(log: Path, offset: int) -> tuple[float, float] | None:
    with log.open("rb") as file:
        file.seek(offset)
        times = request_log_ms(file.read())
    return (percentile(times, 50), percentile(times, 99)) if times else None


def median_run(runs: Sequence[EdgeRun]) -> EdgeRun | None:
    """The run with the median throughput (the lower of the two middle ones for an even count)."""
    return median_by(runs, lambda run: run.wrk.rps)


def _settle(client: Store, stream: str | None) -> int | None:
    """`Store.settled_xlen` of the server's stream, if it has one."""
    return None if stream is None else client.settled_xlen(stream)
