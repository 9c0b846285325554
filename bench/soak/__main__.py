"""``python -m bench.soak`` (what ``make soak`` runs): a long run with restarts, then six verdicts.

It starts its own redis-server, edge and worker on 127.0.0.1 and free ports, sends signed events at a
steady rate, restarts the worker every minute (SIGTERM and kill -9 in turn), with a short retention
and dedupe window so that every expiry is passed within the run. Not in CI: it takes its minutes.
Exit status: 0 when every check passes, 1 when one fails, 2 when the soak itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from bench.soak import checks
from bench.soak.run import Options, Result, soak


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="traffic time (default %(default)s)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (default %(default)s)")
    parser.add_argument(
        "--retention", type=int, default=120, help="RELAY_RETENTION_SECONDS (default %(default)s)"
    )
    parser.add_argument("--dedupe", type=int, default=60, help="RELAY_DEDUPE_SECONDS (default %(default)s)")
    parser.add_argument(
        "--claim-idle", type=float, default=5.0, help="RELAY_CLAIM_IDLE_SECONDS (default %(default)s)"
    )
    parser.add_argument(
        "--restart-every",
        type=float,
        default=60.0,
        help="seconds between worker restarts (default %(default)s)",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where logs and records go (default: a new temp dir)"
    )
    return parser.parse_args(argv)


def report(result: Result) -> str:
    memory = [value for _, value in result.memory]
    lines = [
        f"soak: {result.seconds:.0f} s of traffic at {result.rate:.2f} acknowledged events/s "
        f"(refused: {result.refused or 'none'}, connection errors: {result.errors}); "
        f"worker restarts: {checks.restarts_text(result.restarts)}",
        f"Redis used_memory: {checks.mib(result.baseline)} before traffic, peak {checks.mib(max(memory, default=0))}, "
        f"predicted plateau {checks.mib(result.predicted)} (read from {result.plateau_from_s:.0f} s); "
        f"Redis's own cost per key with an expiry, beyond MEMORY USAGE: {result.key_overhead:.0f} bytes",
        f"edge RSS {checks.mib(min(result.edge_rss, default=0))}..{checks.mib(max(result.edge_rss, default=0))}; "
        f"worker RSS at each restart {checks.mib(min(result.worker_rss, default=0))}.."
        f"{checks.mib(max(result.worker_rss, default=0))} (median {checks.mib(statistics.median(result.worker_rss or [0]))})",
        "",
        checks.family_table(result.rate, result.sizes),
        "",
        checks.key_table(result.counts),
        "",
        *(verdict.line() for verdict in result.verdicts),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="relay-soak-"))
    directory.mkdir(parents=True, exist_ok=True)
    options = Options(
        minutes=args.minutes,
        rate=args.rate,
        retention_s=args.retention,
        dedupe_s=args.dedupe,
        claim_idle_s=args.claim_idle,
        restart_every_s=args.restart_every,
        directory=directory.resolve(),
    )
    # SIGTERM stops the soak as Ctrl-C does, so that every process it started is stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = soak(options, lambda line: print(line, flush=True))
    except (RuntimeError, OSError) as error:
        print(f"soak: failed: {error}", file=sys.stderr)
        return 2
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    text = f"{report(result)}\n\nload average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs"
    print(text, flush=True)
    (directory / "report.md").write_text(text + "\n")
    samples = {"memory": result.memory, "edge_rss": result.edge_rss, "worker_rss": result.worker_rss}
    (directory / "samples.json").write_text(json.dumps(samples))
    return 0 if all(verdict.passed for verdict in result.verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
