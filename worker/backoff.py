"""How long to wait before the next attempt: exponential, capped, with jitter below the nominal delay.

The nominal delay after failed attempt n is ``base * 2**(n-1)``, capped; the wait is drawn uniformly
between 75% and 100% of it. The jitter spreads the retries of many events that failed together (every
vote while Discord was down) instead of retrying them in waves; keeping it below the nominal delay
keeps the cap a true cap and makes the whole schedule's length predictable (`schedule`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

MAX_DELAY_SECONDS = 1800.0
"""The default cap: no retry waits longer than half an hour, however many attempts have failed."""

JITTER = 0.25
"""A wait is the nominal delay minus up to this fraction of it."""


def ceiling(attempt: int, base: float, cap: float = MAX_DELAY_SECONDS) -> float:
    """The nominal (longest) wait after failed attempt `attempt` (1 for the first): ``base * 2**(attempt-1)``, capped."""
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
    """Seconds to wait after failed attempt `attempt`: uniform in ``[0.75 * ceiling, ceiling]``; 0 when `base` is 0.

    `draw` returns a float in ``[0, 1)``; tests pass their own to pin the result.
    """
    return ceiling(attempt, base, cap) * (1.0 - JITTER * draw())


@dataclass(frozen=True, slots=True)
class Step:
    """One attempt of a schedule: how long before it, and since the first attempt (shortest, longest)."""

    attempt: int
    wait: tuple[float, float]
    since_first: tuple[float, float]


def schedule(max_attempts: int, base: float, cap: float = MAX_DELAY_SECONDS) -> list[Step]:
    """Every attempt of a handler that always fails, the first one at 0 (handler run times left out)."""
    steps = [Step(1, (0.0, 0.0), (0.0, 0.0))]
    low = high = 0.0
    for attempt in range(2, max_attempts + 1):
        nominal = ceiling(attempt - 1, base, cap)
        low, high = low + nominal * (1 - JITTER), high + nominal
        steps.append(Step(attempt, (nominal * (1 - JITTER), nominal), (low, high)))
    return steps


def _span(seconds: float) -> str:
    whole = round(seconds, 1)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours:.0f} h"] if hours else []
    parts += [f"{minutes:.0f} min"] if minutes else []
    parts += [f"{secs:g} s"] if secs or not parts else []
    return " ".join(parts)


def table(steps: list[Step]) -> str:
    """`schedule` as the Markdown table of docs/handlers.md (a test keeps the two equal)."""
    lines = ["| attempt | wait before it | time since the first attempt |", "|---|---|---|"]
    for step in steps:
        wait = "at once" if step.attempt == 1 else f"{_span(step.wait[0])} to {_span(step.wait[1])}"
        since = "0" if step.attempt == 1 else f"{_span(step.since_first[0])} to {_span(step.since_first[1])}"
        lines.append(f"| {step.attempt} | {wait} | {since} |")
    return "\n".join(lines)
