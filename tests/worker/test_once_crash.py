"""The crash window of ``ctx["once"]``, with real processes: kill -9 after the effect, before the outcome."""

from __future__ import annotations

import pytest
import redis

from tests.support.task_runs import runs
from tests.support.tasks_once import AFTER, EFFECTS
from tests.support.worker_process import WorkerPool
from tests.worker.helpers import dead_letters_sync, store_sync, until, vote_body
from worker.keys import ARQ_QUEUE

pytestmark = pytest.mark.slow


def test_a_worker_killed_after_the_effect_does_not_make_the_next_run_repeat_it(
    client: redis.Redis, workers: WorkerPool
) -> None:
    first = workers.start("tests.support.tasks_once")
    first.wait_reading(client)
    entry_id = store_sync(client, vote_body())

    until(lambda: client.llen(AFTER) == 1, 20, "the effect was done")
    first.kill()
    assert "failed on" not in first.log()  # killed mid-run, not timed out

    second = workers.start("tests.support.tasks_once")
    # arq hands the crashed run to another worker once its in-progress key expires (timeout + 12 s).
    until(lambda: client.llen(AFTER) == 2, 40, "the handler ran again")
    until(lambda: client.zcard(ARQ_QUEUE) == 0, 10, "the job ended")

    assert [e.decode() for e in client.lrange(EFFECTS, 0, -1)] == [f"{entry_id} {first.pid}"]
    assert [(r["attempt"], r["pid"]) for r in runs(client)] == [(1, first.pid), (2, second.pid)]
    assert dead_letters_sync(client) == []
