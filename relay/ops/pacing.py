"""Pacing for replays: at most so many jobs a second, so handlers and the APIs they call are spared."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

DEFAULT_RATE = 20.0
"""Replayed jobs per second by default: gentle on handlers that call rate-limited APIs (Discord)."""


class Pacer:
    """Spaces work out to at most `rate` items per second (0 or less: no limit)."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    @property
    def batch(self) -> int:
        """Items to hand over at once: about ten batches a second, at most 100 items each."""
        return 100 if self.rate <= 0 else max(1, min(100, int(self.rate / 10)))

    async def wait(self, items: int) -> None:
        """Return when `items` more may go."""
        if self.rate <= 0:
            return
        now = self._clock()
        if self._next is not None and self._next > now:
            await self._sleep(self._next - now)
            now = self._next
        self._next = now + items / self.rate
