"""Backoff between attempts: exponential, capped, jitter below the nominal delay; 0 retries at once."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from worker.backoff import JITTER, MAX_DELAY_SECONDS, ceiling, delay, schedule, table
from worker.registry import DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF

ALMOST_ONE = 1 - 2**-53
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "handlers.md"


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)])
def test_the_ceiling_doubles_with_each_failed_attempt(attempt: int, expected: float) -> None:
    assert ceiling(attempt, base=1.0) == expected


def test_the_ceiling_is_capped() -> None:
    assert ceiling(20, base=1.0) == MAX_DELAY_SECONDS
    assert ceiling(10_000, base=2.0) == MAX_DELAY_SECONDS  # no float overflow on absurd counts
    assert ceiling(3, base=1.0, cap=3.0) == 3.0


def test_zero_backoff_retries_at_once() -> None:
    assert [delay(attempt, 0.0) for attempt in range(1, 10)] == [0.0] * 9


def test_the_delay_spans_three_quarters_to_all_of_the_ceiling() -> None:
    assert delay(3, base=2.0, draw=lambda: 0.0) == 8.0
    assert delay(3, base=2.0, draw=lambda: 0.5) == 7.0
    assert 6.0 <= delay(3, base=2.0, draw=lambda: ALMOST_ONE) < 6.01


def test_random_delays_stay_within_bounds() -> None:
    draws = random.Random(7)
    for attempt in range(1, 30):
        for base in (0.1, 1.0, 2.0):
            nominal = min(MAX_DELAY_SECONDS, base * 2 ** (attempt - 1))
            assert nominal * (1 - JITTER) <= delay(attempt, base, draw=draws.random) <= nominal


def test_jitter_spreads_retries_of_events_that_failed_together() -> None:
    draws = random.Random(11)
    delays = {round(delay(4, 1.0, draw=draws.random), 3) for _ in range(50)}
    assert len(delays) > 40


def test_the_default_schedule_outlasts_an_hour_long_outage() -> None:
    steps = schedule(DEFAULT_MAX_ATTEMPTS, DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF)
    assert len(steps) == DEFAULT_MAX_ATTEMPTS
    shortest_to_dead_letter = steps[-1].since_first[0]
    assert shortest_to_dead_letter >= 3600  # even with the unluckiest jitter
    assert all(step.wait[1] <= DEFAULT_MAX_BACKOFF for step in steps)  # the cap holds
    assert steps[1].wait[1] <= 10  # the first retry comes soon: most failures are blips


def test_the_schedule_adds_up_the_waits() -> None:
    steps = schedule(4, base=1.0, cap=3.0)
    assert [s.wait for s in steps] == [(0, 0), (0.75, 1.0), (1.5, 2.0), (2.25, 3.0)]
    assert [s.since_first for s in steps] == [(0, 0), (0.75, 1.0), (2.25, 3.0), (4.5, 6.0)]


def test_the_guide_shows_the_default_schedule() -> None:
    assert table(schedule(DEFAULT_MAX_ATTEMPTS, DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF)) in GUIDE.read_text()
