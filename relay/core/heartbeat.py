"""A worker's heartbeat: the hash ``relay:worker:<name>`` it rewrites every `BEAT_SECONDS`.

Fields (a contract: ``relay stats``, ``python -m worker.health`` and the admin page read them):
``name`` (the worker's consumer name in the stream's group), ``host``, ``pid``, ``started_ms``,
``beat_ms`` (milliseconds since the epoch), ``running`` (a JSON list of ``{"handler", "entry_id",
"since_ms"}`` for the jobs in flight), ``jobs_done``. The hash expires after `EXPIRE_SECONDS`, so a
worker that died leaves no heartbeat; a clean shutdown deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

from relay.core.keys import WORKER_HEARTBEAT_PREFIX, as_text, worker_heartbeat_key
from relay.core.redis import redis_now_ms

BEAT_SECONDS = 5.0
EXPIRE_SECONDS = 30
STALE_SECONDS = 15.0
"""A beat older than this (three missed) means the worker's loop is stuck or cut off from Redis."""


@dataclass(frozen=True, slots=True)
class Running:
    handler: str
    entry_id: str
    since_ms: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    name: str
    host: str
    pid: int
    started_ms: int
    beat_ms: int
    running: list[Running] = field(default_factory=list)
    jobs_done: int = 0

    def to_hash(self) -> dict[str, str]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": str(self.pid),
            "started_ms": str(self.started_ms),
            "beat_ms": str(self.beat_ms),
            "running": json.dumps([asdict(r) for r in self.running], separators=(",", ":")),
            "jobs_done": str(self.jobs_done),
        }

    @classmethod
    def from_hash(cls, fields: Mapping[Any, Any]) -> Heartbeat:
        """Read a hash leniently (a damaged field reads as empty or 0): it is shown to people."""
        text = {as_text(k): as_text(v) for k, v in fields.items()}
        try:
            running = [
                Running(str(r["handler"]), str(r["entry_id"]), int(r["since_ms"]))
                for r in json.loads(text.get("running", "[]"))
            ]
        except (ValueError, TypeError, KeyError):
            running = []
        return cls(
            name=text.get("name", ""),
            host=text.get("host", ""),
            pid=_int(text.get("pid")),
            started_ms=_int(text.get("started_ms")),
            beat_ms=_int(text.get("beat_ms")),
            running=running,
            jobs_done=_int(text.get("jobs_done")),
        )

    def stale(self, now_ms: int, stale_seconds: float = STALE_SECONDS) -> bool:
        return now_ms - self.beat_ms > stale_seconds * 1000


def _int(value: str | None) -> int:
    return int(value) if value and value.lstrip("-").isdigit() else 0


async def read_heartbeats(redis: Redis, now_ms: int, names: Iterable[str] | None = None) -> list[Heartbeat]:
    """The fresh heartbeats (`now_ms`: Redis's clock), by name: of the workers `names`, or of all.

    ``relay stats``, the admin page and the bridge (which removes the consumers of workers without
    one) read them; so "live" means the same everywhere.
    """
    if names is None:
        keys = [key async for key in redis.scan_iter(match=f"{WORKER_HEARTBEAT_PREFIX}*", count=1000)]
    else:
        keys = [worker_heartbeat_key(name) for name in names]
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        hashes = await pipe.execute()
    beats = [Heartbeat.from_hash(fields) for fields in hashes if fields]
    return sorted((b for b in beats if not b.stale(now_ms)), key=lambda b: b.name)


async def live_heartbeats(redis: Redis, names: Iterable[str] | None = None) -> list[Heartbeat]:
    """`read_heartbeats` by Redis's clock now."""
    return await read_heartbeats(redis, await redis_now_ms(redis), names)
