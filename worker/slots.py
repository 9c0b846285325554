"""Per-handler concurrency (``@on(..., concurrency=N)``): at most N runs of a handler at once per process.

A run that finds its handler's slots taken waits up to `SLOT_WAIT_SECONDS` for one, then is deferred
by about a second and counted as a skipped run, not an attempt (as a run on a worker that lacks the
handler is). Waiting longer would hold one of the process's ``RELAY_WORKER_CONCURRENCY`` places that
other handlers could use, and arq's job timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

from worker.registry import Handler, Registry

SLOT_WAIT_SECONDS = 1.0
"""How long a run waits for a slot of its handler before it is deferred."""

SLOT_DEFER_SECONDS = (0.5, 1.5)
"""A deferred run comes back after a uniform draw in this range (spread: they do not return together)."""


class NoSlot(Exception):
    """Every slot of the handler stayed taken for `SLOT_WAIT_SECONDS`."""


class Slots:
    """One semaphore per handler that has a ``concurrency`` limit, for one worker process."""

    def __init__(self, registry: Registry) -> None:
        self._limits = {h.name: asyncio.Semaphore(h.concurrency) for h in registry if h.concurrency}

    @contextlib.asynccontextmanager
    async def hold(self, handler: Handler, wait: float = SLOT_WAIT_SECONDS) -> AsyncIterator[None]:
        """Hold one of `handler`'s slots for the block; raise `NoSlot` if none frees within `wait`."""
        limit = self._limits.get(handler.name)
        if limit is None:
            yield
            return
        try:
            async with asyncio.timeout(wait):
                await limit.acquire()
        except TimeoutError:
            raise NoSlot(handler.name) from None
        try:
            yield
        finally:
            limit.release()


def defer_seconds() -> float:
    return random.uniform(*SLOT_DEFER_SECONDS)
