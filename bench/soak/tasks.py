"""The soak's handler module (``RELAY_TASKS=bench.soak.tasks``): records each event it handles.

One line per run, the entry id, appended to ``handled-<pid>.txt`` in ``$SOAK_DIR`` with one
``write`` on an ``O_APPEND`` file: the line is in the kernel before the job is reported done, so a
kill -9 after it loses nothing (a rerun writes the id again, which the check reads as a set).
"""

from __future__ import annotations

import os
from pathlib import Path

from relay.core.events import ReviewAdd
from worker import on
from worker.context import Context

SOAK_DIR_ENV = "SOAK_DIR"
HANDLED_GLOB = "handled-*.txt"

_fd: int | None = None


def _record(entry_id: str) -> None:
    global _fd
    if _fd is None:
        path = Path(os.environ[SOAK_DIR_ENV]) / f"handled-{os.getpid()}.txt"
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, f"{entry_id}\n".encode())


@on("REVIEW_ADD", timeout=2)
async def record(ctx: Context, event: ReviewAdd) -> None:
    """A short timeout: a run cut by kill -9 is rerun 2 + 12 s after it started, within the soak."""
    _record(ctx["event_id"])


def handled(directory: Path) -> set[str]:
    """Every entry id any worker process recorded in `directory`."""
    return {line for path in directory.glob(HANDLED_GLOB) for line in path.read_text().split()}
