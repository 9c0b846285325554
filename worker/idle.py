"""Pacing arq's poll: every 10 ms while there is work, backing off to `IDLE_CAP_SECONDS` while idle.

arq polls its queue every ``poll_delay`` whatever happens; at the 10 ms the relay needs for a short
ack-to-handler time, an idle worker spent ~9% of a core on it. The worker's Redis client
(`worker.connection.ResilientArqRedis`) asks `IdlePacer.pause` before each of arq's polls instead:
while polls find nothing due, the pause doubles up to the cap, and it ends early when

- this process's bridge queues jobs (`wake`): a new event starts at once after any idle time;
- a job of this process ends (arq's ``after_job_end`` hook calls `wake`): a retry it scheduled, or
  a job it queued for later, is seen;
- the next job known to be waiting in the queue falls due.

Jobs queued by others (another worker's bridge, ``relay replay``) are seen within the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

BUSY_SECONDS = 0.01
"""The first pause after a poll that found nothing (arq's own ``poll_delay`` while busy)."""

IDLE_CAP_SECONDS = 1.0
"""The longest pause between two polls of an idle worker."""


class IdlePacer:
    """How long to wait before arq's next poll; one per worker process."""

    def __init__(self, busy: float = BUSY_SECONDS, cap: float = IDLE_CAP_SECONDS) -> None:
        self.busy, self.cap = busy, cap
        self.pause_seconds = 0.0
        """The next pause, when no job falls due before it: 0 after a poll that found work."""
        self._next_due: float | None = None
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Work may be waiting: poll now."""
        self.pause_seconds = 0.0
        self._woken.set()

    def polled(self, found: bool, next_due_ms: float | None = None) -> None:
        """The poll found due jobs (`found`), or none; `next_due_ms`: the earliest job waiting after now."""
        self.pause_seconds = 0.0 if found else min(self.cap, max(self.busy, 2 * self.pause_seconds))
        self._next_due = None if next_due_ms is None else next_due_ms / 1000

    async def pause(self) -> None:
        """Wait before the next poll: `pause_seconds`, or less when woken or a known job falls due."""
        wait = self.pause_seconds
        if self._next_due is not None:
            wait = min(wait, max(0.0, self._next_due - time.time()))
        if wait > 0 and not self._woken.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._woken.wait()
        self._woken.clear()
