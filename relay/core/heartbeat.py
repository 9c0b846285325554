"""A worker's heartbeat: the hash ``relay:worker:<name>`` it rewrites every `BEAT_SECONDS`.

Fields (a contract: ``relay stats``, ``python -m worker.health`` and the admin page read them):
``name`` (the worker's consumer name in the stream's group), ``host``, ``pid``, ``started_ms``,
``beat_ms`` (milliseconds since the epoch), ``running`` (a JSON list of ``{"handler", "entry_id",
"since_ms"}`` for the jobs in flight), ``jobs_done``. The hash expires after `EXPIRE_SECONDS`, so a
worker that died leaves no heartbeat; a clean shutdown deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from relay.core.keys import as_text

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
