"""``python -m worker.health``: exit 0 if a worker on this host beats, 1 if not (compose's ``healthcheck``).

A worker's heartbeat (`worker.heartbeat`) is written from its own event loop every 5 s; one older
than 15 s means that loop is stuck or cannot reach Redis. This command reads the heartbeats of this
host (a container's host name is its own) from Redis, so a health check that cannot reach Redis
fails too. ``--pid`` picks one worker process where several share a host.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Sequence
from typing import cast

from pydantic_settings import SettingsConfigDict

from relay.core.heartbeat import STALE_SECONDS, Heartbeat
from relay.core.keys import WORKER_HEARTBEAT_PREFIX
from relay.core.redis import describe, failure, sync_client
from relay.core.settings import RedisAccess

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1


class HealthSettings(RedisAccess):
    """Only what reaching Redis takes: a health check needs no secret."""

    model_config = SettingsConfigDict(env_prefix="RELAY_", env_file=".env", extra="ignore")


def verdict(
    beats: list[Heartbeat], now_ms: int, host: str, pid: int | None, stale_seconds: float
) -> tuple[bool, str]:
    """Pure: whether this host's worker (or process `pid`) beat recently, and a line saying so."""
    mine = [b for b in beats if b.host == host and (pid is None or b.pid == pid)]
    if not mine:
        who = f"pid {pid} on {host}" if pid is not None else host
        return False, f"unhealthy: no heartbeat from a worker on {who}"
    latest = max(mine, key=lambda b: b.beat_ms)
    age = (now_ms - latest.beat_ms) / 1000
    if latest.stale(now_ms, stale_seconds):
        return False, f"unhealthy: {latest.name} last beat {age:.0f} s ago (stuck, or cut off from Redis)"
    return True, f"healthy: {latest.name} beat {age:.1f} s ago, {len(latest.running)} job(s) running"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.health", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pid", type=int, default=None, help="the worker process to check (default: any on this host)"
    )
    parser.add_argument("--stale-seconds", type=float, default=STALE_SECONDS)
    args = parser.parse_args(argv)
    try:
        settings = HealthSettings()
    except Exception as error:  # a bad setting: the worker itself refuses it too
        print(f"unhealthy: invalid settings: {type(error).__name__}", file=sys.stderr)
        return EXIT_UNHEALTHY
    client = sync_client(settings, socket_connect_timeout=3, socket_timeout=3)
    try:
        beats = [
            Heartbeat.from_hash(cast(dict[bytes, bytes], client.hgetall(key)))
            for key in client.scan_iter(f"{WORKER_HEARTBEAT_PREFIX}*", count=1000)
        ]
    except Exception as error:
        print(
            f"unhealthy: cannot read heartbeats from Redis at {describe(settings)}: {failure(error).reason}",
            file=sys.stderr,
        )
        return EXIT_UNHEALTHY
    finally:
        client.close()
    healthy, line = verdict(
        beats, time.time_ns() // 1_000_000, socket.gethostname(), args.pid, args.stale_seconds
    )
    print(line, file=sys.stdout if healthy else sys.stderr)
    return EXIT_HEALTHY if healthy else EXIT_UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
