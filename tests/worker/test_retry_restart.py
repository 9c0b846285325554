"""A retry waiting for its backoff is a job in Redis, not a timer in a process: it survives the worker."""

from __future__ import annotations

import pytest
import redis
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms

from tests.support.task_runs import runs
from tests.support.worker_process import WorkerPool
from tests.worker.helpers import dead_letters_sync, store_sync, until, vote_body
from worker.keys import ARQ_QUEUE

pytestmark = pytest.mark.slow


def test_a_deferred_retry_runs_on_the_next_worker_after_a_kill(
    client: redis.Redis, workers: WorkerPool
) -> None:
    first = workers.start("tests.support.tasks_comeback")
    first.wait_reading(client)
    entry_id = store_sync(client, vote_body())
    job_id = f"{entry_id}:comeback"

    until(lambda: runs(client), 20, "the first attempt ran")

    def waiting_for_retry() -> bool:
        score = client.zscore(ARQ_QUEUE, job_id)
        return (
            score is not None
            and score > timestamp_ms()
            and not client.exists(in_progress_key_prefix + job_id)
        )

    until(waiting_for_retry, 10, "the failed attempt was rescheduled")
    first.kill()  # kill -9 while the retry waits: no process holds it
    assert [(r["attempt"], r["pid"]) for r in runs(client)] == [(1, first.pid)]

    second = workers.start("tests.support.tasks_comeback")
    retried = until(lambda: [r for r in runs(client) if r["attempt"] == 2], 30, "the retry ran")
    assert [(r["event_id"], r["pid"]) for r in retried] == [(entry_id, second.pid)]
    until(lambda: client.zcard(ARQ_QUEUE) == 0, 10, "the job ended")
    assert dead_letters_sync(client) == []
