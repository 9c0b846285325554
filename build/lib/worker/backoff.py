"""How long to wait before the next attempt: exponential with full jitter, capped.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of many events
that failed together, such as every vote while Discord was down, instead of retrying them in waves.
"""

from __future__ import annotations

import random
from collections.abc import Callable

MAX_DELAY_SECONDS = 300.0
"""No retry waits longer than this, however many attempts have failed."""


def ceiling(attempt: int, base: float, cap: float = MAX_DELAY_SECONDS) -> float:
    """The longest wait after failed attempt number `attempt` (1 for the first): ``base * 2**(attempt-1)``, capped."""
    if base <= 0:
        return 0.0
    exponent = min(max(attempt, 1) - 1, 64)  # 2**64 seconds is past any cap; avoids float overflow
    return min(cap, base * 2.0**exponent)


def delay(
    attempt: int,
    base: float,
    *,
    cap: float = MAX_DELAY_SECONDS,
    draw: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt `attempt`: uniform in ``[0, ceiling)``; 0 when `base` is 0.

    `draw` returns a float in ``[0, 1)``; tests pass their own to pin the result.
    """
    return ceiling(attempt, base, cap) * draw()
