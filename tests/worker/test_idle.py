"""`IdlePacer`: no pause while polls find work, doubling to the cap while idle, cut short by a wake."""

from __future__ import annotations

import asyncio
import time

import pytest

from worker.idle import IdlePacer

pytestmark = pytest.mark.anyio


def test_empty_polls_double_the_pause_up_to_the_cap_and_work_resets_it() -> None:
    pacer = IdlePacer(busy=0.01, cap=1.0)
    assert pacer.pause_seconds == 0.0
    seen = []
    for _ in range(10):
        pacer.polled(found=False)
        seen.append(pacer.pause_seconds)
    assert seen[:4] == [0.01, 0.02, 0.04, 0.08]
    assert seen[-1] == 1.0 and max(seen) == 1.0
    pacer.polled(found=True)
    assert pacer.pause_seconds == 0.0


async def test_a_wake_ends_a_long_pause() -> None:
    pacer = IdlePacer(busy=3600.0, cap=3600.0)
    pacer.polled(found=False)
    pausing = asyncio.create_task(pacer.pause())
    await asyncio.sleep(0)
    assert not pausing.done()
    pacer.wake()
    async with asyncio.timeout(30):  # a bound on a hang, not a speed: the pause is an hour otherwise
        await pausing
    assert pacer.pause_seconds == 0.0


async def test_a_job_falling_due_ends_the_pause() -> None:
    pacer = IdlePacer(busy=3600.0, cap=3600.0)
    pacer.polled(found=False, next_due_ms=time.time() * 1000 - 1)  # already due
    async with asyncio.timeout(30):
        await pacer.pause()


async def test_a_wake_before_the_pause_is_not_lost() -> None:
    pacer = IdlePacer(busy=3600.0, cap=3600.0)
    pacer.polled(found=False)
    pacer.wake()  # the bridge queued a job while arq was busy elsewhere
    async with asyncio.timeout(30):
        await pacer.pause()
