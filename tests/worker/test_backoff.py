"""Backoff between attempts: exponential ceiling, full jitter, capped; 0 retries at once."""

from __future__ import annotations

import random

import pytest

from worker.backoff import MAX_DELAY_SECONDS, ceiling, delay

ALMOST_ONE = 1 - 2**-53


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)])
def test_the_ceiling_doubles_with_each_failed_attempt(attempt: int, expected: float) -> None:
    assert ceiling(attempt, base=1.0) == expected


def test_the_ceiling_is_capped() -> None:
    assert ceiling(20, base=1.0) == MAX_DELAY_SECONDS
    assert ceiling(10_000, base=2.0) == MAX_DELAY_SECONDS  # no float overflow on absurd counts
    assert ceiling(3, base=1.0, cap=3.0) == 3.0


def test_zero_backoff_retries_at_once() -> None:
    assert [delay(attempt, 0.0) for attempt in range(1, 10)] == [0.0] * 9


def test_the_delay_spans_zero_to_the_ceiling() -> None:
    assert delay(3, base=2.0, draw=lambda: 0.0) == 0.0
    assert delay(3, base=2.0, draw=lambda: 0.5) == 4.0
    assert 7.99 < delay(3, base=2.0, draw=lambda: ALMOST_ONE) < 8.0


def test_random_delays_stay_within_bounds() -> None:
    draws = random.Random(7)
    for attempt in range(1, 30):
        for base in (0.1, 1.0, 2.0):
            assert (
                0.0
                <= delay(attempt, base, draw=draws.random)
                < min(MAX_DELAY_SECONDS, base * 2 ** (attempt - 1))
            )


def test_jitter_spreads_retries_of_events_that_failed_together() -> None:
    draws = random.Random(11)
    delays = {round(delay(4, 1.0, draw=draws.random), 3) for _ in range(50)}
    assert len(delays) > 40
