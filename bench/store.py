"""Typed, synchronous reads and resets of the bench's own Redis (redis-py's sync types are loose)."""

from __future__ import annotations

import time
from typing import Any, cast

import redis


class Store:
    """The few commands the harness uses between runs; never on a hot path."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def close(self) -> None:
        self.client.close()

    def flush(self) -> None:
        """Empty the database; loaded scripts stay, as on a server that has been running."""
        self.client.flushall()

    def xlen(self, stream: str) -> int:
        return int(cast(int, self.client.xlen(stream)))

    def settled_xlen(self, stream: str) -> int:
        """The stream's length once the server has finished what wrk left in flight.

        wrk stops with requests unanswered; the server still stores them. Waiting for the length to
        stay put for a while keeps those out of the next run's count (and in this one's).
        """
        length, steady_since = self.xlen(stream), time.monotonic()
        deadline = steady_since + 5  # bounded
        while time.monotonic() - steady_since < 0.25 and time.monotonic() < deadline:
            time.sleep(0.02)
            previous, length = length, self.xlen(stream)
            if length != previous:
                steady_since = time.monotonic()
        return length

    def last_id(self, stream: str) -> bytes:
        return cast(bytes, cast(dict[str, Any], self.client.xinfo_stream(stream))["last-generated-id"])

    def first_after(self, stream: str, entry_id: bytes) -> bytes | None:
        """The id of the first entry after `entry_id`, if any."""
        entries = cast(list[tuple[bytes, Any]], self.client.xrange(stream, min=b"(" + entry_id, count=1))
        return entries[0][0] if entries else None

    def command_calls(self) -> dict[str, int]:
        """Calls per command since the server started (INFO commandstats; scripts' inner calls included)."""
        stats = cast(dict[str, dict[str, Any]], self.client.info("commandstats"))
        return {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}

    def consumers(self, stream: str, group: str) -> int:
        """How many consumers `group` has; 0 while the stream or the group does not exist."""
        try:
            return len(cast(list[Any], self.client.xinfo_consumers(stream, group)))
        except redis.ResponseError:
            return 0
