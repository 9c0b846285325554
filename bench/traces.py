"""The no-op handler's traces: when each event's handler started, written to files the bench reads.

`bench.noop_tasks` appends one line per run, ``<stream entry id> <epoch seconds>``, to a file of its
worker process's own in the directory ``BENCH_TRACE_DIR`` names. Lines are buffered and written a few
milliseconds after the first of them, so tracing costs a handler no round trip to Redis (which would
be a real handler's work, not a no-op's) and no write per event. The bench counts the lines to know
when every event has been handled, and reads the times for the ack-to-handler latency.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

TRACE_DIR_ENV = "BENCH_TRACE_DIR"
FLUSH_SECONDS = 0.002
"""How long a trace may wait in the buffer: adds to when the bench sees it, never to a latency."""


class TraceWriter:
    """One worker process's traces, appended to ``started-<pid>.txt`` in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"started-{os.getpid()}.txt"
        self._lines: list[str] = []

    def started(self, entry_id: str, at: float) -> None:
        if not self._lines:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        self._lines.append(f"{entry_id} {at!r}\n")

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        with self.path.open("a") as file:
            file.writelines(lines)


class Traces:
    """The bench's side: every worker's trace file in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _lines(self) -> list[str]:
        lines: list[str] = []
        for path in sorted(self.directory.glob("started-*.txt")):
            text = path.read_text()
            lines += text[: text.rfind("\n") + 1].splitlines()  # a line being written is not one yet
        return lines

    def count(self) -> int:
        return len(self._lines())

    def starts(self) -> dict[str, float]:
        """Stream entry id -> the handler's start, epoch seconds (the first run, if there were more)."""
        found: dict[str, float] = {}
        for line in self._lines():
            entry, _, at = line.partition(" ")
            found.setdefault(entry, float(at))
        return found

    def clear(self) -> None:
        for path in self.directory.glob("started-*.txt"):
            path.unlink()
