"""``python -m bench`` (what ``make bench`` runs): measure, then write `bench/RESULTS.md`.

It starts its own redis-server and every server and worker it measures, on 127.0.0.1 and free ports,
and stops all of them before it returns, also on error or Ctrl-C. Every wait is bounded.
Exit status: 0 when every target is met, 1 when one is missed, 2 when the bench itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import timeit
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.drain import measure_drain
from bench.edge import BEFORE, CEILING, SERVERS, Server, measure_server, relay_at
from bench.forward import FORWARD, NOOP, measure_forward
from bench.handlers import measure_idle, measure_io
from bench.load import Requests, require_wrk, write_requests
from bench.pipeline import measure_pipeline
from bench.processes import ProcessGroup, Redis, start_redis
from bench.profile import profile_server, profile_worker, py_spy_available
from bench.report import LOADED, Machine, Results, kept_notes, render, summary, targets, to_json
from bench.senders import SOURCES, SenderSecrets, measure_senders, write_sender_requests
from bench.traces import TRACE_DIR_ENV

HERE = Path(__file__).resolve().parent
WRK_THREADS = 2
PACKAGES = ("uvicorn", "uvloop", "httptools", "starlette", "fastapi", "pydantic", "redis", "hiredis", "arq")
"""Versions recorded with the results: they move the figures."""


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


IO_CONCURRENCY = 5
"""Jobs in flight per I/O-bound worker. At 5, four workers can ask for at most 4 x 5 / 0.05 s = 400
events/s, which at the ~2.7 ms of worker CPU an httpx call and its job cost (bench/RESULTS.md) is about
one core: the run stays bound by the 50 ms wait, which is what it measures, on a 2-core machine that
also runs Redis and the slow server. At 10 (the first choice), four workers would need ~2.2 cores and
the run measured the CPU instead (1.49x and 1.80x on 2026-12-02, against 2.01x and 3.25x at 5)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--servers",
        default="ceiling,baseline,relay,relay-httptools",
        help="edge servers to measure, in order; '' for none",
    )
    parser.add_argument("--before", metavar="REF",
                        help=f"also measure the relay edge as of this git revision ({BEFORE}), just before relay")  # fmt: skip
    parser.add_argument("--connections", type=_counts, default=[50, 1], help="wrk connection counts")
    parser.add_argument("--senders", default=",".join(SOURCES),
                        help="senders whose routes are measured side by side on one edge (bench.senders); '' for none")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=6, help="length of each measured wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times each edge server and each worker count is measured, interleaved; the median round counts")  # fmt: skip
    parser.add_argument("--warmup", type=float, default=1, help="wrk warm-up per server before measuring")
    parser.add_argument("--rate-hint", type=float, default=10_000,
                        help="requests/s the signed bodies cover until the ceiling has been measured")  # fmt: skip
    parser.add_argument(
        "--workers", type=_counts, default=[1, 2], help="worker counts for the pipeline; '' skips it"
    )
    parser.add_argument(
        "--pipeline-seconds", type=float, default=3, help="wrk load during the pipeline throughput run"
    )
    parser.add_argument("--pipeline-connections", type=int, default=8)
    parser.add_argument("--latency-rate", type=float, default=200, help="events/s of the paced latency run")
    parser.add_argument("--latency-seconds", type=float, default=5)
    parser.add_argument("--idle-seconds", type=float, default=30,
                        help="how long one idle worker's CPU is measured (bench.handlers); 0 skips the idle run")  # fmt: skip
    parser.add_argument("--idle-quiet", type=float, default=10, help="idle seconds before each wake-up probe")
    parser.add_argument("--idle-probes", type=int, default=3, help="wake-up probes after the idle run")
    parser.add_argument("--io-workers", type=_counts, default=[1, 2, 4],
                        help="worker counts for the I/O-bound run (a 50 ms wait per event); '' skips it")  # fmt: skip
    parser.add_argument(
        "--io-concurrency",
        type=int,
        default=IO_CONCURRENCY,
        help="RELAY_WORKER_CONCURRENCY per I/O-bound worker",
    )
    parser.add_argument("--io-events", type=int, default=500, help="events per worker in each I/O-bound run")
    parser.add_argument(
        "--io-rounds",
        type=int,
        default=3,
        help="times each I/O-bound worker count is measured (the median is reported)",
    )
    parser.add_argument("--forward-events", type=int, default=2000,
                        help="events one forwarding worker delivers in each round (bench.forward); 0 skips it")  # fmt: skip
    parser.add_argument(
        "--forward-rounds", type=int, default=3, help="forwarding rounds (the median is reported)"
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md", help="Markdown report to write")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for every process started (e.g. RELAY_LOG_LEVEL=WARNING)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "last",
                        help="emptied, then holds the processes' logs (kept after the run)")  # fmt: skip
    parser.add_argument("--profile", type=float, default=None, metavar="SECONDS",
                        help="after measuring, sample the edge and a worker with py-spy for this long; "
                             "default: 5 s of whichever missed a target, when py-spy is installed; 0: never")  # fmt: skip
    parser.add_argument("--drain", type=float, default=None, metavar="SECONDS",
                        help="after measuring, fill a backlog for this long and time 1 and 2 workers draining it "
                             "alone (bench.drain); default: 1.5 s when 2 workers missed their target; 0: never")  # fmt: skip
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.servers = [name for name in args.servers.split(",") if name]
    args.senders = [name for name in args.senders.split(",") if name]
    if set(args.senders) - set(SOURCES):
        parser.error(f"unknown senders; choose from {', '.join(SOURCES)}")
    if args.before and BEFORE not in args.servers:
        at = args.servers.index("relay") if "relay" in args.servers else len(args.servers)
        args.servers.insert(at, BEFORE)
    unknown = set(args.servers) - set(SERVERS) - ({BEFORE} if args.before else set())
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}; choose from {', '.join(SERVERS)}")
    return args


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.stdout + done.stderr else "unknown"


def _packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run(args: argparse.Namespace) -> Results:
    require_wrk()
    command = "python -m bench " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "python -m bench"
    machine = Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        python=f"{platform.python_version()} ({sys.executable})",
        python_speed_us=min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6,
        redis="",
        wrk=_version(["wrk", "-v"]).split(" Copyright")[0],
        packages=_packages(),
        load_before=_load(),
        load_after="",
    )
    secret = secrets.token_hex(16)
    nonce = secrets.randbelow(10**4) * 100  # the bench's bodies carry it, so runs never share an id
    results = Results(machine, command)
    scratch = args.workdir
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    extra = dict(item.split("=", 1) for item in args.env)
    env = {
        **os.environ,
        "RELAY_SECRET": secret,
        "RELAY_TASKS": "bench.noop_tasks",
        TRACE_DIR_ENV: str(scratch / "traces"),
        **extra,
    }
    try:
        _measure(args, results, scratch, env, secret, nonce)
    finally:
        # Keep the processes' logs; drop the bulky request files and Redis data.
        for path in scratch.glob("requests.*"):
            path.unlink()
        shutil.rmtree(scratch / "redis", ignore_errors=True)
    return results


def _drain_seconds(args: argparse.Namespace, results: Results) -> float:
    """How long to fill the drain diagnostic's backlog (`bench.drain`); 0 for no diagnostic."""
    if args.drain is not None:
        return args.drain if args.workers else 0.0
    scaling = [t for t in targets(results) if t.name.startswith("pipeline, 2 workers")]
    return 1.5 if any(t.met is False for t in scaling) else 0.0


def _what_to_profile(args: argparse.Namespace, results: Results) -> tuple[bool, bool]:
    """(edge, worker): what py-spy should sample after the measured runs."""
    has_edge, has_workers = "relay" in args.servers, bool(args.workers)
    if args.profile is not None:
        return has_edge and args.profile > 0, has_workers and args.profile > 0
    if not py_spy_available():
        return False, False
    missed = [t for t in targets(results) if t.met is False]
    return (
        has_edge and any(t.name.startswith("relay") for t in missed),
        has_workers and any(not t.name.startswith("relay") for t in missed),
    )


def _measure(
    args: argparse.Namespace, results: Results, scratch: Path, env: dict[str, str], secret: str, nonce: int
) -> None:
    longest = max(args.seconds, args.warmup, args.pipeline_seconds)
    with ProcessGroup(scratch, env) as group:
        store = start_redis(group)
        group.env["RELAY_REDIS_URL"] = store.url

        def requests_for(rate: float, current: Requests | None = None) -> Requests:
            """Enough distinct bodies for `rate` requests/s over the longest run, with a margin."""
            per_thread = int(rate * longest * 1.25 / WRK_THREADS) + 1000
            if current is not None and current.per_thread >= per_thread:
                return current
            return write_requests(scratch / "requests", WRK_THREADS, per_thread, secret.encode(), nonce)

        requests = requests_for(args.rate_hint)
        servers: dict[str, Server] = dict(SERVERS)
        if args.before:
            servers[BEFORE] = relay_at(args.before, scratch / "before")
        for round_number in range(1, args.rounds + 1):
            for name in args.servers:
                runs = measure_server(
                    group, store, servers[name], requests,
                    connections=args.connections, seconds=args.seconds, warmup_seconds=args.warmup,
                    env=group.env, round=round_number,
                )  # fmt: skip
                results.edge += runs
                for r in runs:
                    print(
                        f"bench: round {round_number} {name:8} c={r.wrk.connections:<3} "
                        f"{r.wrk.rps:9,.0f} req/s, p99 {r.wrk.p99_ms:.2f} ms"
                    )
                if name == CEILING.name:
                    # Nothing stores more requests than the bare route answers: size the bodies by it.
                    requests = requests_for(max(r.wrk.rps for r in runs), requests)
        _measure_senders(args, results, group, store, scratch, secret, nonce)
        for round_number in range(1, args.rounds + 1):
            for count in args.workers:
                pipe = measure_pipeline(
                    group, store, count, requests, secret.encode(),
                    load_seconds=args.pipeline_seconds, load_connections=args.pipeline_connections,
                    latency_rate=args.latency_rate, latency_seconds=args.latency_seconds,
                    # each run's warm-up and paced bodies (nonce and nonce + 1) are its own
                    nonce=nonce + 10 * count + 2 * (round_number - 1), env=group.env, round=round_number,
                )  # fmt: skip
                results.pipeline.append(pipe)
                rate, p99 = pipe.throughput.rate, pipe.latency.percentile(99)
                print(
                    f"bench: round {round_number} pipeline, {count} worker(s): {rate:,.0f} events/s, "
                    f"ack-to-handler p99 {p99:.1f} ms"
                )
        fill = _drain_seconds(args, results)
        for round_number in range(1, args.rounds + 1) if fill else ():
            for count in args.workers:
                drain = measure_drain(
                    group, store, count, requests,
                    fill_seconds=fill, connections=50, env=group.env, round=round_number,
                )  # fmt: skip
                results.drains.append(drain)
                print(
                    f"bench: round {round_number} drain, {count} worker(s): {drain.backlog} events, "
                    f"{drain.rate:,.0f} events/s"
                )
        _measure_handlers(args, results, group, store, secret.encode(), nonce)
        edge, worker = _what_to_profile(args, results)
        seconds = args.profile or 5
        if edge:
            results.profiles["relay edge under wrk, 50 connections"] = profile_server(
                group, store, requests, seconds=seconds, env=group.env
            )
        if worker:
            results.profiles["one worker, edge fed by wrk"] = profile_worker(
                group,
                store,
                requests,
                secret.encode(),
                seconds=seconds,
                nonce=nonce + 90,
                env=group.env,
            )
        results.machine = replace(results.machine, redis=store.version, load_after=_load())
    results.method = {
        "threads": WRK_THREADS,
        "per_thread": requests.per_thread,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "pipe_conns": args.pipeline_connections,
        "pipe_seconds": args.pipeline_seconds,
        "rate": args.latency_rate,
        "lat_seconds": args.latency_seconds,
    }


def _measure_senders(
    args: argparse.Namespace,
    results: Results,
    group: ProcessGroup,
    store: Redis,
    scratch: Path,
    secret: str,
    nonce: int,
) -> None:
    """Each sender's route of one edge, side by side (`bench.senders`); signed now, for their timestamps."""
    if not args.senders:
        return
    keys = replace(SenderSecrets.generate(), sphere=secret)
    # Sized by the fastest edge measured so far (the ceiling), as the edge's own bodies are: sized by
    # --rate-hint alone, a fast machine ran out of distinct votes and wrk sent repeats (deduped: 200).
    rate = max([args.rate_hint, *(r.wrk.rps for r in results.edge)])
    per_thread = int(rate * max(args.seconds, args.warmup) * 1.25 / WRK_THREADS) + 1000
    requests = {
        source: write_sender_requests(
            scratch / "requests", source, keys, WRK_THREADS, per_thread, nonce + 500
        )
        for source in args.senders
    }
    results.senders = measure_senders(
        group, store, requests, connections=LOADED, seconds=args.seconds, warmup_seconds=args.warmup,
        rounds=args.rounds, env={**group.env, **keys.env()},
    )  # fmt: skip


def _measure_handlers(
    args: argparse.Namespace, results: Results, group: ProcessGroup, store: Redis, secret: bytes, nonce: int
) -> None:
    """The handler-side runs (`bench.handlers`): idle cost and wake-up, I/O-bound scaling, then
    forwarding (`bench.forward`)."""
    if args.idle_seconds > 0:
        results.idle = measure_idle(
            group, store, secret, idle_seconds=args.idle_seconds, quiet_seconds=args.idle_quiet,
            probes=args.idle_probes, nonce=nonce + 200, env=group.env,
        )  # fmt: skip
        print(
            f"bench: idle worker {results.idle.cpu_percent:.2f}% of a core; ack-to-handler after "
            f"{args.idle_quiet:g} s idle: {', '.join(f'{ms:.1f}' for ms in results.idle.wake_ms)} ms"
        )
    for round_number in range(1, args.io_rounds + 1):
        for count in args.io_workers:
            run = measure_io(
                group, store, count, secret, concurrency=args.io_concurrency, events=args.io_events * count,
                nonce=nonce + 300 + 10 * count + 2 * (round_number - 1), env=group.env, round=round_number,
            )  # fmt: skip
            results.io.append(run)
            print(
                f"bench: round {round_number} I/O-bound, {count} worker(s): {run.rate:,.0f} events/s, "
                f"{run.us_per_event:,.0f} worker CPU µs/event, {run.handled}/{run.events} handled"
            )
    for round_number in range(1, args.forward_rounds + 1) if args.forward_events > 0 else ():
        for number, kind in enumerate((NOOP, FORWARD)):
            forward = measure_forward(
                group, store, events=args.forward_events, nonce=nonce + 500 + 4 * round_number + 2 * number,
                env=group.env, round=round_number, kind=kind,
            )  # fmt: skip
            results.forward.append(forward)
            print(
                f"bench: round {round_number} {kind}, 1 worker: {forward.rate:,.0f} events/s, "
                f"{forward.us_per_event:,.0f} worker CPU µs/event"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        results = run(args)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"bench: failed: {error}", file=sys.stderr)
        return 2
    if args.output.exists():
        results.notes = kept_notes(args.output.read_text())
    args.output.write_text(render(results))
    if args.json:
        args.json.write_text(json.dumps(to_json(results), indent=2))
    print()
    print(summary(results))
    print(f"\nbench: wrote {args.output} in {time.monotonic() - started:.0f} s")
    missed = [t for t in targets(results) if t.met is False]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
