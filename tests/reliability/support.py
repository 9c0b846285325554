"""Processes and evidence for the fault tests: an edge process, signed votes, the handled-files record.

The edge runs as its own ``uvicorn relay.app:app`` process, as in production, so that it lives
through everything done to Redis and the workers on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from relay.cli.devrun import EDGE_LIMITS
from relay.core.keys import CONSUMER_GROUP, DEAD_STREAM, EVENTS_STREAM
from tests.conftest import SECRET
from tests.support.processes import stop as stop_process
from tests.support.redis_server import free_port
from tests.support.worker_process import ROOT
from worker.keys import ARQ_QUEUE


def vote(user_id: int) -> bytes:
    """A VOTE_ADD body; distinct user ids make distinct events (no two are deduplicated)."""
    return b'{"event":"VOTE_ADD","guild_id":"111111111111111111","user_id":"%d"}' % user_id


def signature(body: bytes) -> str:
    """Computed here, independently of `relay.edge.signature`."""
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def until(check: Callable[[], Any], within: float, what: str, every: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy and return that; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what}: not within {within}s"
        time.sleep(every)
    return result


def claiming_worker_settings(redis_url: str) -> dict[str, str]:
    """``RELAY_*`` settings of workers that get killed: entries a killed worker had read are claimed by
    another after 2 s idle, and logged at INFO (where the claims show); no metrics listener."""
    return {
        "redis_url": redis_url,
        "secret": SECRET,
        "log_level": "INFO",
        "claim_idle_seconds": "2",
        "worker_metrics": "off",
    }


CLIENT_KEEPALIVE_SECONDS = 1.0
"""How long the tests' HTTP clients keep an idle connection: well under the edge's keep-alive (5 s),
or a request sent on a connection the edge is closing just then fails without an answer (the usual
keep-alive race, which a sender would retry; these tests want an answer for every request)."""


class EdgeProcess:
    """``uvicorn relay.app:app`` on a free loopback port, with the limits production runs it with
    (`relay.cli.devrun.EDGE_LIMITS`) and the given ``RELAY_*`` settings."""

    def __init__(self, directory: Path, settings: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "edge.log"
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
        self.env.update({f"RELAY_{key.upper()}": value for key, value in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 20.0) -> EdgeProcess:
        args = [
            sys.executable, "-m", "uvicorn", "relay.app:app",
            "--host", "127.0.0.1", "--port", str(self.port), *EDGE_LIMITS, "--no-access-log",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        until(self._alive, within, f"the edge answering /healthz:\n{self.log()}")
        return self

    def _alive(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"the edge exited:\n{self.log()}"
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True, slots=True)
class Handled:
    """One line a handler wrote: it ran to completion for this event."""

    entry_id: str
    user_id: str
    attempt: int
    pid: int


def handled(directory: Path) -> list[Handled]:
    """Every line `tests.reliability.tasks_files` wrote in `directory`, all processes together."""
    lines: list[Handled] = []
    for path in sorted(directory.glob("*.log")):
        *complete, _being_written = path.read_text(encoding="ascii").split("\n")
        for line in complete:
            entry_id, user_id, attempt, pid = line.split(" ")
            lines.append(Handled(entry_id, user_id, int(attempt), int(pid)))
    return lines


def pipeline_state(client: redis.Redis) -> dict[str, Any]:
    """Where the events are in Redis: for quiescence checks and failure messages."""
    info = client.xinfo_stream(EVENTS_STREAM)
    groups = {g["name"].decode(): g for g in client.xinfo_groups(EVENTS_STREAM)}
    group = groups.get(CONSUMER_GROUP, {})
    return {
        "stream": int(info["length"]),
        "last_id": info["last-generated-id"],
        "delivered_id": group.get("last-delivered-id"),
        "pending": group.get("pending"),
        "queue": int(client.zcard(ARQ_QUEUE)),
        "dead": int(client.xlen(DEAD_STREAM)),
    }


def quiet(state: dict[str, Any]) -> bool:
    """Every entry read and acknowledged by the workers' group, and no handler job left in arq's queue."""
    return bool(state["delivered_id"] == state["last_id"] and state["pending"] == 0 and state["queue"] == 0)
