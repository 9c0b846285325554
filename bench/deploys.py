"""``python -m bench.deploys``: how many votes each documented way of deploying the edge loses.

A sender that retries as top.gg v1 does (`bench.sender`) posts votes at a steady rate while the
edge is deployed a few times, each time with a `slow_client` in the middle of a request; then every
vote is counted as acknowledged, refused or lost (all 4 attempts failed), and every acknowledged
vote is looked for in the relay's stream. The ways (docs/deploy.md):

- ``restart``: one uvicorn process stopped with SIGTERM and started again (``systemctl restart``);
- ``socket``: the same, with the listening socket held across it as a systemd socket unit holds it
  (``uvicorn --fd 3``): connections wait in its backlog instead of being refused;
- ``reload``: ``uvicorn --workers 2`` sent SIGHUP (``systemctl reload``): new workers start before
  the old ones stop;
- ``compose``: ``docker-compose up -d`` replacing the edge container (`bench.compose_deploys`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis

from bench.processes import RELAY_APP, Process, ProcessGroup, free_port, start_redis, wait_for_port
from bench.sender import SCHEMES, Scheme, Tally, Target, send_votes, vote_key
from relay.cli.devrun import EDGE_LIMITS
from relay.core.keys import EVENTS_STREAM, F_BODY

WAYS = ("restart", "socket", "reload", "compose")
SLOW_BODY = 1000
"""Bytes a slow client's request announces; it sends half of them, then nothing."""


@dataclass(frozen=True)
class Plan:
    """`rate` votes a second for `duration` s, signed as `scheme`; `deploys` deploys spread evenly,
    each begun with a `slow_client` mid-request when `slow` is set."""

    scheme: Scheme = "topgg"
    rate: float = 40.0
    duration: float = 30.0
    deploys: int = 2
    slow: bool = True


@dataclass
class DeployRun:
    """One way's run: the sender's tally, each deploy's seconds, and what the stream is missing."""

    way: str
    tally: Tally
    deploy_seconds: list[float]
    missing: int
    """Acknowledged votes not in the stream: lost although the sender was told 200."""

    @property
    def lost(self) -> int:
        return self.tally.count("lost") + self.tally.count("refused") + self.missing

    def line(self) -> str:
        tally = self.tally
        failures = ", ".join(f"{why} {count}" for why, count in sorted(tally.failures.items())) or "none"
        deploys = ", ".join(f"{seconds:.1f}" for seconds in self.deploy_seconds)
        return (
            f"{self.way}: lost {self.lost} of {tally.sent} (all 4 attempts failed {tally.count('lost')}, "
            f"refused {tally.count('refused')}, acknowledged but not stored {self.missing}); "
            f"retried {tally.retried}, at most {tally.max_attempts} attempts and {tally.longest_wait:.1f} s "
            f"to an acknowledgement; failed attempts: {failures}; deploys took {deploys} s"
        )

    def as_json(self) -> str:
        return json.dumps(
            {
                "way": self.way,
                "sent": self.tally.sent,
                "lost": self.lost,
                "retried": self.tally.retried,
                "max_attempts": self.tally.max_attempts,
                "longest_wait_s": round(self.tally.longest_wait, 2),
                "deploy_s": [round(seconds, 2) for seconds in self.deploy_seconds],
            }
        )


def sender_secret(scheme: Scheme) -> tuple[str, dict[str, str]]:
    """A fresh secret for `scheme`, and the edge's settings that enable its route."""
    sphere = secrets.token_hex(32)
    if scheme == "sphere":
        return sphere, {"RELAY_SECRET": sphere}
    topgg = "whs_" + secrets.token_hex(24)
    return topgg, {"RELAY_SECRET": sphere, "RELAY_TOPGG_SECRET": topgg}


def missing_from(tally: Tally, scheme: Scheme, bodies: Iterator[bytes]) -> int:
    """How many acknowledged votes none of the stored `bodies` carries."""
    stored = set()
    for body in bodies:
        try:
            stored.add(vote_key(scheme, body))
        except (ValueError, KeyError, TypeError):
            continue  # not a vote of this run
    return len(tally.acknowledged_keys() - stored)


def stream_bodies(client: redis.Redis) -> Iterator[bytes]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(EVENTS_STREAM))
    return (fields[F_BODY.encode()] for _, fields in entries)


def slow_client(port: int) -> socket.socket:
    """A connection in the middle of a request body, as a stalled sender leaves one: the edge waits
    up to ``RELAY_BODY_TIMEOUT`` (10 s) for the rest, and a graceful stop would wait with it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {SLOW_BODY}\r\nX-Sphere-Signature: 0\r\n\r\n"
    )
    sock.sendall(head.encode() + b"{" * (SLOW_BODY // 2))
    return sock


def send_while_deploying(target: Target, plan: Plan, deploy: Callable[[], None]) -> tuple[Tally, list[float]]:
    """Send `plan`'s votes to `target` while a thread runs `deploy` `plan.deploys` times."""
    prefix = str(secrets.randbelow(10**9)).rjust(9, "1")  # digits: Sphere's ids are snowflakes

    def deploys() -> list[float]:
        seconds = []
        for _ in range(plan.deploys):
            time.sleep(plan.duration / (plan.deploys + 1))
            slow = slow_client(target.port) if plan.slow else None
            time.sleep(0.2)  # so that the edge has read what it sent
            started = time.monotonic()
            try:
                deploy()
            finally:
                if slow is not None:
                    slow.close()
            seconds.append(time.monotonic() - started)
        return seconds

    async def main() -> tuple[Tally, list[float]]:
        load = asyncio.create_task(send_votes(target, plan.rate, plan.duration, prefix))
        seconds = await asyncio.to_thread(deploys)
        return await load, seconds

    return asyncio.run(main())


def wait_answering(port: int, within: float = 60.0) -> None:
    """Until ``/healthz`` answers 200 (a held socket accepts connections before any edge is up)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the edge on port {port} did not answer within {within:.0f} s")


@contextmanager
def local_redis(directory: Path, settings: dict[str, str]) -> Iterator[tuple[ProcessGroup, redis.Redis]]:
    """A process group whose environment has `settings` and a fresh redis-server's URL."""
    with ProcessGroup(directory, {**os.environ, **settings, "RELAY_LOG_LEVEL": "WARNING"}) as group:
        server = start_redis(group)
        group.env["RELAY_REDIS_URL"] = server.url
        yield group, redis.Redis.from_url(server.url)


def edge_args(where: Sequence[str], *extra: str) -> list[str]:
    """The edge as production runs it (the image's flags), listening `where`."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        RELAY_APP,
        *where,
        "--loop",
        "uvloop",
        *EDGE_LIMITS,
        "--no-access-log",
        *extra,
    ]


def measure_restart(directory: Path, plan: Plan, *, held: bool = False) -> DeployRun:
    """SIGTERM the edge, wait until it has exited, start it again; with `held`, on a listening
    socket bound here and passed by number (``--fd``), as systemd passes a socket unit's (fd 3)."""
    secret, settings = sender_secret(plan.scheme)
    with local_redis(directory, settings) as (group, client):
        listener = socket.create_server(("127.0.0.1", 0), backlog=2048) if held else None
        fds: tuple[int, ...]
        if listener is not None:
            port, fds = listener.getsockname()[1], (listener.fileno(),)
            where = ["--fd", str(listener.fileno())]
        else:
            port, fds = free_port(), ()
            where = ["--host", "127.0.0.1", "--port", str(port)]

        def start() -> Process:
            edge = group.start("edge", edge_args(where), pass_fds=fds)
            wait_answering(port)
            return edge

        edge = start()

        def restart() -> None:
            nonlocal edge
            group.stop(edge)
            edge = start()

        try:
            tally, seconds = send_while_deploying(
                Target("127.0.0.1", port, plan.scheme, secret), plan, restart
            )
        finally:
            group.stop(edge)
            if listener is not None:
                listener.close()
        way = "socket" if held else "restart"
        return DeployRun(way, tally, seconds, missing_from(tally, plan.scheme, stream_bodies(client)))


def measure_reload(directory: Path, plan: Plan) -> DeployRun:
    """``uvicorn --workers 2`` sent SIGHUP: each new worker starts before an old one stops."""
    secret, settings = sender_secret(plan.scheme)
    with local_redis(directory, settings) as (group, client):
        port = free_port()
        # The metrics' own port would be bound by two processes at once: off, as docs/deploy.md says.
        args = edge_args(
            ["--host", "127.0.0.1", "--port", str(port)],
            "--workers",
            "2",
            "--timeout-worker-healthcheck",
            "60",
        )
        edge = group.start("edge", args, env={"RELAY_METRICS": "off"}, stop_timeout=30)
        wait_for_port(port, edge.popen, edge.log)
        wait_answering(port)

        def reload() -> None:
            before = workers_of(edge.pid)
            edge.popen.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 120
            while workers_of(edge.pid) & before:  # until every old worker has been replaced
                if time.monotonic() > deadline or edge.popen.poll() is not None:
                    raise RuntimeError("the reload did not replace the workers")
                time.sleep(0.2)

        tally, seconds = send_while_deploying(Target("127.0.0.1", port, plan.scheme, secret), plan, reload)
        return DeployRun("reload", tally, seconds, missing_from(tally, plan.scheme, stream_bodies(client)))


def workers_of(pid: int) -> set[int]:
    """The uvicorn workers of the supervisor `pid` (its children but multiprocessing's resource tracker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return set()
    return {int(child) for child in children if b"spawn_main" in _cmdline(int(child))}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def measure(way: str, directory: Path, plan: Plan) -> DeployRun:
    if way == "restart":
        return measure_restart(directory, plan)
    if way == "socket":
        return measure_restart(directory, plan, held=True)
    if way == "reload":
        return measure_reload(directory, plan)
    from bench.compose_deploys import measure_compose  # only this way needs Docker

    return measure_compose(directory, plan)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deploys", description=__doc__.split("\n")[0])
    parser.add_argument(
        "ways", nargs="*", default=list(WAYS[:3]), help=f"of {', '.join(WAYS)} (compose needs Docker)"
    )
    parser.add_argument(
        "--scheme",
        choices=sorted(SCHEMES),
        default="topgg",
        help="sign as top.gg v1 (POST /webhook/topgg, the default) or Sphere (POST /webhook)",
    )
    parser.add_argument("--rate", type=float, default=40.0, help="votes started per second (default 40)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending (default 30)")
    parser.add_argument("--deploys", type=int, default=2, help="deploys while sending (default 2)")
    parser.add_argument(
        "--no-slow-client", dest="slow", action="store_false", help="no stalled request at each deploy"
    )
    parser.add_argument("--json", action="store_true", help="a JSON line per way as well")
    args = parser.parse_args(argv)
    if unknown := [way for way in args.ways if way not in WAYS]:
        parser.error(f"unknown way {unknown[0]!r}; choose from {', '.join(WAYS)}")
    plan = Plan(args.scheme, args.rate, args.duration, args.deploys, args.slow)
    lost = 0
    for way in args.ways:
        with tempfile.TemporaryDirectory(prefix=f"deploys-{way}-") as directory:
            run = measure(way, Path(directory), plan)
        print(run.line(), flush=True)
        if args.json:
            print(run.as_json(), flush=True)
        lost += run.lost
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
