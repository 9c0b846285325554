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
from typing import TextIO

TRACE_DIR_ENV = "BENCH_TRACE_DIR"
FLUSH_SECONDS = 0.002
"""How long a trace may wait in the buffer: adds to when the bench sees it, never to a latency."""


class TraceWriter:
    """One worker process's traces, appended to ``started-<pid>.txt`` in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"started-{os.getpid()}.txt"
        self._lines: list[str] = []
        self._file: TextIO | None = None  # opened at the first flush, kept open until `close`

    def started(self, entry_id: str, at: float) -> None:
        if not self._lines:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        self._lines.append(f"{entry_id} {at!r}\n")

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if not lines:  # written already (by `close`)
            return
        if self._file is None:
            self._file = self.path.open("a")
        self._file.writelines(lines)
        self._file.flush()

    def close(self) -> None:
        if self._lines:
            self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


class Traces:
    """The bench's side: every worker's trace file in one directory, read as it grows.

    `clear` does not delete the files (their writers keep them open): it sets a mark, and only the
    lines written after it count.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._read: dict[Path, int] = {}  # bytes of each file read so far
        self._partial: dict[Path, str] = {}  # a last line still being written
        self._lines: list[str] = []  # complete lines since the mark

    def _refresh(self) -> None:
        for path in sorted(self.directory.glob("started-*.txt")):
            with path.open("rb") as file:
                file.seek(self._read.get(path, 0))
                data = file.read()
            if not data:
                continue
            self._read[path] = self._read.get(path, 0) + len(data)
            text = self._partial.pop(path, "") + data.decode()
            complete, _, rest = text.rpartition("\n")
            if rest:
                self._partial[path] = rest
            if complete:
                self._lines += complete.split("\n")

    def count(self) -> int:
        self._refresh()
        return len(self._lines)

    def starts(self) -> dict[str, float]:
        """Stream entry id -> the handler's start, epoch seconds (the first run, if there were more)."""
        self._refresh()
        found: dict[str, float] = {}
        for line in self._lines:
            entry, _, at = line.partition(" ")
            found.setdefault(entry, float(at))
        return found

    def clear(self) -> None:
        """Count only what is written from now on."""
        self._refresh()
        self._lines = []
