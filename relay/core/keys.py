"""Every Redis key the relay uses, the layout of a stream entry, and the one ingest write.

Nothing else in the code base spells a key name: import it from here, or from `worker.keys` for the
keys only the workers use (as arq does with ``constants.py``). Users' own tools may read these keys; their names are part of the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EVENTS_STREAM = "relay:events"
"""Ingest stream: one entry per accepted delivery. Never trimmed below an unacknowledged entry."""

DEAD_STREAM = "relay:dead"
"""Dead letters: one entry per (event, handler) that failed for good."""

REJECTED_STREAM = "relay:rejected"
"""A capped log of refused requests, for `relay rejected` (see `relay.edge.rejections`)."""

REJECTED_COUNT = "relay:rejected:count"
"""How many requests the edges refused in all, recorded in `REJECTED_STREAM` or not."""

CONSUMER_GROUP = "relay:workers"
"""The consumer group the workers' bridge reads `EVENTS_STREAM` with."""

WORKER_HEARTBEAT_PREFIX = "relay:worker:"
"""``relay:worker:<consumer name>``: a hash each worker process rewrites every few seconds, with an
expiry, and deletes when it stops cleanly (`relay.core.heartbeat`)."""


def worker_heartbeat_key(name: str) -> str:
    return WORKER_HEARTBEAT_PREFIX + name


DEDUPE_PREFIX = "relay:dedupe:"
"""``relay:dedupe:<dedupe key>`` holds the entry id of the first delivery, for the dedupe window."""


def dedupe_redis_key(dedupe_key: str) -> str:
    return DEDUPE_PREFIX + dedupe_key


OUTCOME_PREFIX = "relay:outcome:"
"""``relay:outcome:<entry id>``: per handler, the latest outcome of the event's job (`worker.outcomes`)."""

MINUTE_PREFIX = "relay:minute:"
"""``relay:minute:<minutes since the epoch>``: runs handled and failed in that minute (`worker.outcomes`)."""


HANDLED_TOTALS = "relay:handled"
"""A hash: per handler, how many of its jobs ended done, in all (`worker.outcomes`; best effort)."""


def outcome_redis_key(entry_id: str) -> str:
    return OUTCOME_PREFIX + entry_id


def minute_redis_key(minute: int) -> str:
    return MINUTE_PREFIX + str(minute)


def as_text(value: Any) -> str:
    """A value of a Redis reply (bytes from a client without ``decode_responses``, or str) as text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# Entry fields. Values are bytes in Redis; `received_ms` is milliseconds since the epoch.
F_TYPE = "type"
F_BODY = "body"
F_RECEIVED = "received_ms"
F_DEDUPE = "dedupe"
F_SOURCE = "source"
"""The sender, on entries of every sender but Sphere (whose entries are as they always were)."""
SPHERE = "sphere"


class EntryFields:
    """Reads a stream entry's fields leniently: a missing or damaged field reads as empty or 0.

    For entries written by older or other versions (dead letters, refusals), which are shown to
    people and must not fail to print.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[bytes, bytes]) -> None:
        self._fields = fields

    def raw(self, name: str) -> bytes:
        return self._fields.get(name.encode(), b"")

    def text(self, name: str) -> str:
        return self.raw(name).decode(errors="replace")

    def number(self, name: str) -> int:
        value = self.raw(name)
        return int(value) if value.isdigit() else 0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One entry of `EVENTS_STREAM`, as the workers and the CLI read it."""

    entry_id: str
    type: str
    body: bytes
    received_ms: int
    dedupe: str
    source: str = SPHERE

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> StoredEvent:
        return cls(
            entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            type=fields[F_TYPE.encode()].decode(),
            body=fields[F_BODY.encode()],
            received_ms=int(fields[F_RECEIVED.encode()]),
            dedupe=fields[F_DEDUPE.encode()].decode(),
            source=fields.get(F_SOURCE.encode(), b"sphere").decode(errors="replace"),
        )


INGEST_SCRIPT = """
local seen = redis.call('GET', KEYS[1])
if seen then
  return {0, seen}
end
local id
if ARGV[6] then
  id = redis.call('XADD', KEYS[2], '*',
    'type', ARGV[2], 'body', ARGV[3], 'received_ms', ARGV[4], 'dedupe', ARGV[5], 'source', ARGV[6])
else
  id = redis.call('XADD', KEYS[2], '*',
    'type', ARGV[2], 'body', ARGV[3], 'received_ms', ARGV[4], 'dedupe', ARGV[5])
end
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
return {1, id}
"""
"""Drop a redelivery or append the event, atomically, in one round trip.

KEYS: the dedupe key, `EVENTS_STREAM`. ARGV: dedupe seconds, type, raw body, received ms, dedupe key,
and the sender for every sender but Sphere.
Returns ``{1, new id}`` for a new event and ``{0, original id}`` for a redelivery within the window.
The field names here must match the ``F_*`` constants above.
"""
