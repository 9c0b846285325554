"""Replays are paced to the rate (`relay.ops.pacing`), checked on a fake clock rather than by waiting."""

from __future__ import annotations

import pytest

from relay.ops.pacing import Pacer


class FakeTime:
    """A clock and a sleep that only move time forward, so pacing is checked without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.anyio
async def test_the_pacer_spaces_batches_to_the_rate() -> None:
    time = FakeTime()
    pacer = Pacer(10.0, clock=time.clock, sleep=time.sleep)
    assert pacer.batch == 1
    for _ in range(3):
        await pacer.wait(5)  # five items at 10/s: the next batch may go half a second later
    assert time.slept == [0.5, 0.5]

    time.now += 60  # idle for a minute: no credit piles up beyond the next batch's turn
    await pacer.wait(5)
    assert time.slept == [0.5, 0.5]


@pytest.mark.anyio
async def test_rate_zero_means_no_limit() -> None:
    time = FakeTime()
    pacer = Pacer(0, clock=time.clock, sleep=time.sleep)
    for _ in range(100):
        await pacer.wait(100)
    assert time.slept == [] and pacer.batch == 100
