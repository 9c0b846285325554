"""What a bench run found: the targets checked, `bench/RESULTS.md` rendered, a JSON summary. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import forward, handlers, senders
from bench.drain import DrainRun
from bench.edge import EdgeRun, median_run
from bench.pipeline import PipelineRun, Throughput, median_by

EDGE_RATIO = 3.0
EDGE_P99_MS = 10.0
PIPELINE_ONE_WORKER = 1000.0
PIPELINE_SCALING = 1.6
ACK_TO_HANDLER_P99_MS = 100.0
LOADED = 50
"""The connection count the edge targets are held at."""

NOTES_START = "<!-- notes: written by hand, kept when make bench rewrites this file -->"
NOTES_END = "<!-- end of notes -->"


def kept_notes(previous: str) -> str:
    """The hand-written notes section of an earlier RESULTS.md, markers excluded; '' if none."""
    start, end = previous.find(NOTES_START), previous.find(NOTES_END)
    if start < 0 or end < start:
        return ""
    return previous[start + len(NOTES_START) : end].strip()


@dataclass(frozen=True)
class Machine:
    date: str
    cpu: str
    cores: int
    python: str
    python_speed_us: float
    """Best time of ``sum(range(1000))``: how fast this interpreter build is, to compare machines."""
    redis: str
    wrk: str
    packages: dict[str, str]
    load_before: str
    load_after: str


@dataclass
class Results:
    machine: Machine
    command: str
    edge: list[EdgeRun] = field(default_factory=list)
    pipeline: list[PipelineRun] = field(default_factory=list)
    drains: list[DrainRun] = field(default_factory=list)
    """The drain diagnostic's runs (`bench.drain`), when the scaling target was missed."""
    profiles: dict[str, str] = field(default_factory=dict)
    """py-spy summaries by what was sampled, when the run took any (``--profile``)."""
    method: dict[str, Any] = field(default_factory=dict)
    """The run's parameters, for the "how it is measured" text."""
    notes: str = ""
    """Hand-written analysis kept from the previous RESULTS.md (between the NOTES markers)."""
    idle: handlers.IdleRun | None = None
    """An idle worker's CPU and wake-up (`bench.handlers`), when measured."""
    io: list[handlers.IoRun] = field(default_factory=list)
    """I/O-bound scaling runs (`bench.handlers`)."""
    senders: list[senders.SenderRun] = field(default_factory=list)
    """Each sender's route of one edge, side by side (`bench.senders`)."""
    forward: list[forward.ForwardRun] = field(default_factory=list)
    """Forwarding runs (`bench.forward`)."""

    def edge_runs(self, server: str, connections: int) -> list[EdgeRun]:
        """Every round's run of `server` at `connections`."""
        return [r for r in self.edge if r.server == server and r.wrk.connections == connections]

    def edge_run(self, server: str, connections: int) -> EdgeRun | None:
        """The run that stands for `server` at `connections`: its median round (`median_run`)."""
        return median_run(self.edge_runs(server, connections))

    def edge_medians(self) -> list[EdgeRun]:
        """One run per (server, connections), in the order first measured."""
        keys = dict.fromkeys((r.server, r.wrk.connections) for r in self.edge)
        return [run for key in keys if (run := self.edge_run(*key)) is not None]

    def pipeline_runs(self, count: int) -> list[PipelineRun]:
        """Every round's pipeline run with `count` workers."""
        return [p for p in self.pipeline if p.workers == count]

    def workers(self, count: int) -> PipelineRun | None:
        """The run that stands for `count` workers: its median round by events/s."""
        return median_by(self.pipeline_runs(count), lambda run: run.throughput.rate)

    def drain(self, count: int) -> DrainRun | None:
        """The drain run that stands for `count` workers: its median round by events/s."""
        return median_by([d for d in self.drains if d.workers == count], lambda run: run.rate)

    def pipeline_medians(self) -> list[PipelineRun]:
        """One run per worker count, in the order first measured."""
        counts = dict.fromkeys(p.workers for p in self.pipeline)
        return [run for count in counts if (run := self.workers(count)) is not None]


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    met: bool | None
    """None when this run did not measure it."""


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def targets(results: Results) -> list[Target]:
    """Every target of the benchmarks issue, judged on this run alone."""
    relay, baseline = results.edge_run("relay", LOADED), results.edge_run("baseline", LOADED)
    out = []
    if relay and baseline:
        r = ratio(relay.wrk.rps, baseline.wrk.rps)
        out.append(
            Target(
                f"relay >= {EDGE_RATIO:g}x baseline throughput, {LOADED} connections",
                f"{r:.2f}x",
                r >= EDGE_RATIO,
            )
        )
    else:
        out.append(
            Target(
                f"relay >= {EDGE_RATIO:g}x baseline throughput, {LOADED} connections", "not measured", None
            )
        )
    if relay:
        p99 = relay.wrk.p99_ms
        out.append(
            Target(
                f"relay p99 <= {EDGE_P99_MS:g} ms at {LOADED} connections",
                f"{p99:.2f} ms",
                p99 <= EDGE_P99_MS,
            )
        )
    for conns in dict.fromkeys(r.wrk.connections for r in results.edge if r.server == "relay"):
        runs = results.edge_runs("relay", conns)  # every round must pass these, not only the median
        non_2xx = sum(run.wrk.non_2xx for run in runs)
        socket_errors = sum(run.wrk.socket_errors for run in runs)
        rounds = f" ({len(runs)} rounds)" if len(runs) > 1 else ""
        out.append(
            Target(
                f"relay: zero non-2xx, {conns} connection(s)",
                f"{non_2xx} non-2xx, {socket_errors} socket errors{rounds}",
                non_2xx + socket_errors == 0,
            )
        )
        stored = all(bool(run.entries_match) and run.wrk.repeated == 0 for run in runs)
        out.append(
            Target(
                f"relay: every 2xx a new stored entry, {conns} connection(s)",
                "; ".join(_entries_text(run) for run in runs),
                stored,
            )
        )
    one, two = results.workers(1), results.workers(2)
    if one:
        rate = one.throughput.rate
        out.append(
            Target(
                f"pipeline, 1 worker >= {PIPELINE_ONE_WORKER:,.0f} events/s",
                f"{rate:,.0f} events/s",
                rate >= PIPELINE_ONE_WORKER,
            )
        )
    if one and two:
        r = ratio(two.throughput.rate, one.throughput.rate)
        out.append(
            Target(
                f"pipeline, 2 workers >= {PIPELINE_SCALING:g}x 1 worker", f"{r:.2f}x", r >= PIPELINE_SCALING
            )
        )
    for pipe in results.pipeline_medians():
        lat = pipe.latency
        p99 = lat.percentile(99)
        # every paced event handled, in every round, not only the median one
        complete = all(
            p.latency.handled == p.latency.acked == p.latency.sent
            for p in results.pipeline_runs(pipe.workers)
        )
        out.append(
            Target(
                f"ack-to-handler p99 <= {ACK_TO_HANDLER_P99_MS:g} ms at {lat.rate:g}/s, {pipe.workers} worker(s)",
                f"{p99:.1f} ms ({lat.handled}/{lat.sent} handled)",
                complete and p99 <= ACK_TO_HANDLER_P99_MS,
            )
        )
    out += [Target(*found) for found in handlers.targets(results.idle, results.io)]
    out += [Target(*found) for found in senders.targets(results.senders)]
    return out


def _entries_text(run: EdgeRun) -> str:
    if run.entries is None:
        return "-"
    text = f"{run.entries} entries, {run.wrk.ok} 2xx"
    extra = run.entries - run.wrk.ok
    if extra:
        text += f" (+{extra} of {run.wrk.unanswered} unanswered at stop)"
    if run.wrk.repeated:
        text += f", {run.wrk.repeated} repeated bodies"
    return text


def _check(met: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "n/a"}[met]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def edge_table(results: Results) -> str:
    rows = []
    for run in results.edge_medians():
        w = run.wrk
        match = {None: "-", True: "yes", False: "**NO**"}[run.entries_match]
        rows.append(
            [
                run.server,
                str(w.connections),
                f"{w.rps:,.0f}",
                f"{w.p50_ms:.2f}",
                f"{w.p99_ms:.2f}",
                str(w.non_2xx),
                str(w.socket_errors),
                f"{match}: {_entries_text(run)}" if run.entries is not None else "-",
                f"{run.server_us_per_request:.0f}",
                f"{run.redis_us_per_request:.0f}",
                f"{run.wrk_us_per_request:.0f}",
            ]
        )
    header = ["server", "conns", "requests/s", "p50 ms", "p99 ms", "non-2xx", "socket errors",
              "stream entries = 2xx", "server CPU µs/req", "Redis CPU µs/req", "wrk CPU µs/req"]  # fmt: skip
    return _table(header, rows)


def rounds_text(results: Results) -> str:
    """Each server's rounds, when there were several: what the median was taken from."""
    lines = []
    for median in results.edge_medians():
        runs = results.edge_runs(median.server, median.wrk.connections)
        if len(runs) > 1:
            each = ", ".join(f"{r.wrk.rps:,.0f} req/s p99 {r.wrk.p99_ms:.2f} ms" for r in runs)
            lines.append(f"- {median.server}, {median.wrk.connections} connection(s), by round: {each}")
    return "\n".join(lines)


def pipeline_rounds_text(results: Results) -> str:
    """Each worker count's rounds, when there were several: what the median was taken from."""
    lines = []
    for median in results.pipeline_medians():
        runs = results.pipeline_runs(median.workers)
        if len(runs) > 1:
            each = ", ".join(
                f"{p.throughput.rate:,.0f} events/s ack→handler p99 {p.latency.percentile(99):.1f} ms"
                for p in runs
            )
            lines.append(f"- {median.workers} worker(s), by round: {each}")
    return "\n".join(lines)


def ratios(results: Results) -> str:
    lines = []
    for conns in sorted({r.wrk.connections for r in results.edge}, reverse=True):
        runs = {r.server: r.wrk.rps for r in results.edge_medians() if r.wrk.connections == conns}
        parts = []
        if "relay" in runs and "baseline" in runs:
            parts.append(f"relay / baseline **{ratio(runs['relay'], runs['baseline']):.2f}x**")
        if "relay" in runs and "ceiling" in runs:
            parts.append(f"relay / ceiling {ratio(runs['relay'], runs['ceiling']):.2f}")
        if "baseline" in runs and "ceiling" in runs:
            parts.append(f"baseline / ceiling {ratio(runs['baseline'], runs['ceiling']):.2f}")
        cpu = {
            r.server: r.server_us_per_request for r in results.edge_medians() if r.wrk.connections == conns
        }
        for other in sorted(name for name in cpu if name.startswith("relay-") and "relay" in cpu):
            parts.append(
                f"relay / {other} requests/s {ratio(runs['relay'], runs[other]):.2f}, "
                f"CPU µs per request {ratio(cpu['relay'], cpu[other]):.2f}"
            )
        if parts:
            lines.append(f"- {conns} connection(s): " + ", ".join(parts))
    return "\n".join(lines)


def pipeline_table(results: Results) -> str:
    one = results.workers(1)
    rows = []
    for run in results.pipeline_medians():
        t, lat = run.throughput, run.latency
        scale = f"{ratio(t.rate, one.throughput.rate):.2f}x" if one else "-"
        rows.append(
            [
                str(run.workers),
                f"{t.events:,}",
                f"{t.seconds:.2f}",
                f"{t.rate:,.0f}",
                scale,
                f"{lat.percentile(50):.1f}",
                f"{lat.percentile(99):.1f}",
                f"{lat.handled}/{lat.sent}",
                f"{t.us_per_event(t.edge_cpu_s):.0f}",
                f"{t.us_per_event(t.workers_cpu_s):.0f}",
                f"{t.us_per_event(t.redis_cpu_s):.0f}",
            ]
        )
    header = ["workers", "events", "seconds", "events/s", "vs 1 worker", "ack→handler p50 ms",
              "p99 ms", "handled/sent", "edge CPU µs/event", "workers CPU µs/event", "Redis CPU µs/event"]  # fmt: skip
    return _table(header, rows)


def summary(results: Results) -> str:
    """The tables a README can quote: edge, ratios, pipeline, targets."""
    parts = []
    if results.edge:
        parts += [edge_table(results), "", ratios(results), ""]
        by_round = rounds_text(results)
        if by_round:
            parts += [
                "Each server's median round is shown above, and the ratios are between medians:",
                "",
                by_round,
                "",
            ]
    if results.pipeline:
        rate = results.pipeline[0].latency.rate
        parts += [pipeline_table(results), "", f"Latency columns: paced at {rate:g} events/s.", ""]
        by_round = pipeline_rounds_text(results)
        if by_round:
            parts += [
                "Each worker count's median round is shown, and ratios are between medians:",
                "",
                by_round,
                "",
            ]
    if results.senders:
        parts += [
            f"Each sender's route of one edge, {LOADED} connections, its own signed votes (bench/senders.py):",
            "",
            senders.table(results.senders),
            "",
        ]
    if results.idle is not None or results.io:
        parts += [handlers.table(results.idle, results.io)]
    if results.forward:
        parts += [forward.table(results.forward)]
    rows = [[t.name, t.measured, _check(t.met)] for t in targets(results)]
    parts.append(_table(["target", "measured", "met"], rows))
    return "\n".join(parts)


def to_json(results: Results) -> dict[str, Any]:
    """Everything measured, as plain data (for tools and the smoke test)."""
    return {
        "machine": vars(results.machine),
        "command": results.command,
        "edge": [
            {
                "server": r.server,
                "round": r.round,
                "connections": r.wrk.connections,
                "seconds": r.wrk.duration_s,
                "requests": r.wrk.requests,
                "requests_per_s": r.wrk.rps,
                "p50_ms": r.wrk.p50_ms,
                "p90_ms": r.wrk.p90_ms,
                "p99_ms": r.wrk.p99_ms,
                "max_ms": r.wrk.max_ms,
                "ok": r.wrk.ok,
                "non_2xx": r.wrk.non_2xx,
                "socket_errors": r.wrk.socket_errors,
                "sent": r.wrk.sent,
                "unanswered": r.wrk.unanswered,
                "repeated": r.wrk.repeated,
                "entries": r.entries,
                "entries_match": r.entries_match,
                "server_us_per_request": r.server_us_per_request,
                "redis_us_per_request": r.redis_us_per_request,
                "wrk_us_per_request": r.wrk_us_per_request,
                "edge_p50_ms": r.edge_ms[0] if r.edge_ms else None,
                "edge_p99_ms": r.edge_ms[1] if r.edge_ms else None,
            }
            for r in results.edge
        ],
        "pipeline": [
            {
                "workers": p.workers,
                "round": p.round,
                "events": p.throughput.events,
                "seconds": p.throughput.seconds,
                "events_per_s": p.throughput.rate,
                "latency_rate": p.latency.rate,
                "latency_achieved_rate": p.latency.achieved_rate,
                "latency_sent": p.latency.sent,
                "latency_acked": p.latency.acked,
                "latency_handled": p.latency.handled,
                "ack_to_handler_p50_ms": p.latency.percentile(50),
                "ack_to_handler_p99_ms": p.latency.percentile(99),
            }
            for p in results.pipeline
        ],
        "drain": [
            {
                "workers": d.workers,
                "round": d.round,
                "backlog": d.backlog,
                "events": d.events,
                "seconds": d.seconds,
                "events_per_s": d.rate,
                "workers_cpu_us_per_event": d.us_per_event(d.workers_cpu_s),
                "redis_cpu_us_per_event": d.us_per_event(d.redis_cpu_s),
            }
            for d in results.drains
        ],
        "handlers": handlers.to_json(results.idle, results.io),
        "senders": [
            {
                "source": r.source,
                "round": r.round,
                "requests": r.wrk.requests,
                "requests_per_s": r.wrk.rps,
                "p99_ms": r.wrk.p99_ms,
                "edge_cpu_us_per_request": r.edge_us_per_request,
                "redis_cpu_us_per_request": r.redis_us_per_request,
                "entries": r.entries,
                "stored_all": r.stored_all,
            }
            for r in results.senders
        ],
        "forward": forward.to_json(results.forward),
        "targets": [vars(t) for t in targets(results)],
    }


METHOD = """\
- **Load**: `wrk` ({threads} threads at 50 connections, 1 thread at 1), script `bench/wrk/post.lua`. Every request
  is a validly signed `REVIEW_ADD` with its own review id and user id, so the relay takes the path that
  stores a new entry, never the duplicate path. The harness signs the bodies before the run and writes them
  as ready HTTP requests of one fixed size, {per_thread:,} distinct ones per wrk thread (sized from the
  ceiling's rate, which no storing server can beat); the Lua script reads the next one from a buffered
  file. Signing in Lua (HMAC-SHA256 in LuaJIT) would spend load-generator CPU on the two cores the server
  under test uses. The script counts every request sent after its bodies ran out ("repeated bodies"); a
  relay run with any fails the stored-path target. (The ceiling, which ignores bodies, may repeat them.)
- **Servers**: one uvicorn process each, `--loop uvloop --http httptools --no-access-log`, default log
  level (the relay edge with its production protocol and limits instead of plain httptools:
  `relay.cli.devrun.EDGE_LIMITS`, as in `docker-compose.yml`), against one private `redis-server` (append-only, fsync every second, as in `docker-compose.yml`).
  `relay-httptools` is the same edge under uvicorn's own `--http httptools` (the other limits the same):
  what the edge's protocol (bounded heads, one write per answer) costs or saves; `relay-two-writes`
  (only with `--servers`) keeps the bounds and writes each answer's head and body apart; `relay-before`
  (only with `--before REF`) is the edge as of another git revision, the same flags, in the same rounds.
  Each server gets a {warmup:g} s warm-up, then Redis is emptied before every measured run of {seconds:g} s.
- **Rounds**: the servers are measured {rounds} times over, interleaved (ceiling, baseline, relay, then
  again), each time in a fresh process: back-to-back runs of the same server on this shared machine
  differ by up to a fifth. A server's row is its median round by requests/s; the ratios compare
  medians; the stored-path checks (non-2xx, entries = 2xx) must hold in every round.
- **Stream check**: after each run the bench counts the entries in the server's stream (`relay:events`
  for the relay, `bench:baseline` for the baseline). Each 2xx must have stored one: entries may exceed the
  2xx count only by requests wrk had sent but not seen answered when it stopped (it drops them), which the
  script counts.
- **non-2xx** is wrk's count of statuses above 399 (none of these servers sends 1xx or 3xx); socket
  errors include wrk's timeouts (5 s). Latency percentiles are wrk's.
- **CPU µs/req**: CPU time of the server process (and of redis-server) during the run, from /proc,
  and of wrk (from its rusage), divided by the responses. On 2 cores they all share, so a server's
  throughput is bounded near 2 s of CPU / (server + Redis + wrk µs per request).
- **Pipeline**: the relay edge plus 1, then 2, `arq worker.main.WorkerSettings` processes with
  `RELAY_TASKS=bench.noop_tasks` (one handler whose only work is noting its start time in the process, written to a file every 2 ms: `bench.traces`).
  Throughput: wrk ({pipe_conns} connections, {pipe_seconds:g} s) posts new events while the workers run; events/s
  is the events stored over the time from the first entry's XADD (its stream id) to the moment the bench
  sees the last handler's record (polled every 10 ms). Latency: a paced open-loop sender (httpx; wrk
  cannot pace) posts {rate:g} events/s for {lat_seconds:g} s; for each 2xx, the handler's start minus the time in
  its entry id, which Redis stamps at the XADD the 2xx waits for (whole ms, so up to 1 ms is added,
  never taken off). The sender's own receive time is not used: on two busy cores it often reads a 2xx
  after the handler has started. Like the servers, the worker counts are measured {rounds} times over,
  interleaved (1, 2, then again), with fresh processes and an emptied Redis each time; a worker
  count's row is its median round by events/s, the scaling ratio compares medians, and every paced
  event must be handled in every round.
- **Forwarding** (`bench/forward.py`): one worker with no handler code and `RELAY_FORWARD_URL` set
  delivers a backlog, stored at once with the edge's ingest script, to a local receiver that answers
  at once (`bench/slow_server.py` with no delay); events/s from the store to the worker's count of
  2xx answers (`relay:handled`, written every 0.1 s), and the worker's CPU per event: signing, the HTTP
  request and the job's bookkeeping. Each round first measures the same worker running
  `bench.noop_tasks` (a handler that does nothing) on the same backlog: the ratio of the two CPU
  figures is what forwarding adds. Medians of the rounds are shown.
- **Drain diagnostic** (`bench/drain.py`; run when 2 workers miss their target, or with `--drain`): not a
  target. In as many rounds, wrk fills an emptied Redis through the edge at 50 connections, the edge
  stops, and 1, then 2, workers drain the backlog alone; the rate and CPU are counted from the first
  handler's run to the last, so start-up is left out. It shows how the workers scale with only Redis
  beside them on the cores.
- Ratios compare runs of the same `make bench` on the same machine; absolute figures drift between runs
  on shared machines, ratios much less.
"""


def _calls_per_event(t: Throughput) -> str:
    """Redis commands per event, most frequent first (the bench's own polling included, a few per 10 ms)."""
    if not t.events:
        return "Redis commands: no events"
    ranked = sorted(t.redis_calls.items(), key=lambda item: -item[1])
    total = sum(t.redis_calls.values()) / t.events
    return (
        f"Redis commands per event: {total:.1f} ("
        + ", ".join(f"{name} {n / t.events:.2f}" for name, n in ranked)
        + ")"
    )


def render(results: Results) -> str:
    """The whole of `bench/RESULTS.md`."""
    m = results.machine
    packages = ", ".join(f"{name} {version}" for name, version in m.packages.items())
    parts = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`{results.command}`) on {m.date}.",
        "",
        f"- Machine: {m.cores} cores ({m.cpu}); load average before {m.load_before}, after {m.load_after}",
        f"- Python {m.python} ({m.python_speed_us:.1f} µs for `sum(range(1000))`); Redis {m.redis}; {m.wrk}",
        f"- {packages}",
        "",
        "## Summary",
        "",
        summary(results),
        "",
        "## How it is measured",
        "",
        METHOD.format(**results.method),
    ]
    from bench.bounds import bounds  # bounds builds on this module

    found = bounds(results)
    if found:
        parts += ["## What bounds the missed targets", "", found, ""]
        if not results.profiles:
            parts += ["(No profile in this run: install py-spy into the virtualenv to get one.)", ""]
    for what, profile in results.profiles.items():
        parts += [f"## Profile: {what}", "", profile, ""]
    if results.notes:
        parts += [NOTES_START, results.notes.strip(), NOTES_END, ""]
    parts += ["## Raw output", ""]
    several = len({r.round for r in results.edge}) > 1
    for run in results.edge:
        parts += [
            f"### {run.server}, {run.wrk.connections} connection(s)"
            + (f", round {run.round}" if several else ""),
            "",
            "```",
            run.wrk.raw.strip(),
            "```",
            "",
        ]
    for p in results.pipeline:
        t, lat = p.throughput, p.latency
        parts += [f"### pipeline, {p.workers} worker(s), round {p.round}", "", "```", t.wrk_raw.strip()]
        parts += [
            f"events stored {t.events}, first entry to last handler {t.seconds:.3f} s, {t.rate:.1f} events/s",
            f"CPU s: edge {t.edge_cpu_s:.2f}, workers {t.workers_cpu_s:.2f}, redis {t.redis_cpu_s:.2f}, "
            f"wrk {t.wrk_cpu_s:.2f}",
            _calls_per_event(t),
            f"paced at {lat.rate:g}/s (achieved {lat.achieved_rate:.1f}/s): sent {lat.sent}, 2xx {lat.acked}, "
            f"handled {lat.handled}; ack-to-handler ms "
            + ", ".join(f"p{q:g} {lat.percentile(q):.1f}" for q in (50, 90, 99, 100)),
            "```",
            "",
        ]
    if results.drains:
        parts += ["### drain diagnostic (bench/drain.py)", "", "```"]
        parts += [
            f"round {d.round}, {d.workers} worker(s): backlog {d.backlog}, {d.events} handled in {d.seconds:.3f} s "
            f"after the first, {d.rate:.1f} events/s; CPU µs/event: workers {d.us_per_event(d.workers_cpu_s):.0f}, "
            f"redis {d.us_per_event(d.redis_cpu_s):.0f}"
            for d in results.drains
        ]
        parts += ["```", ""]
    return "\n".join(parts)
