"""Lost Redis connections: a worker process reconnects by itself after Redis is killed and restarted.

The same process (same pid, never restarted) must survive the outage and handle the events stored
before Redis went and after it came back. Evidence of handling is written to files
(`tests.reliability.tasks_files`), outside the Redis being killed.

Redis is held down for a set time: that sleep is the fault's duration, not a wait for work. Every
Redis command of a worker retries for about 30 s (`worker.connection.connection_options`), so outages shorter
than that are ridden out in-process; a longer one ends the process (non-zero), for its supervisor
(compose's ``restart:``) to start it again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.reliability.support import claiming_worker_settings, handled, pipeline_state, until
from tests.support.redis_server import RedisServer
from tests.support.worker_process import WorkerPool, WorkerProcess, worker_pool
from tests.worker.helpers import store_sync, vote_body

pytestmark = pytest.mark.slow

TASKS = "tests.reliability.tasks_files"


@pytest.fixture
def workers(own_redis: RedisServer, tmp_path: Path, handled_dir: Path) -> Iterator[WorkerPool]:
    with worker_pool(tmp_path, claiming_worker_settings(own_redis.url)) as pool:
        yield pool


def handled_ids(directory: Path) -> set[str]:
    return {line.entry_id for line in handled(directory)}


def wait_handled(ids: list[str], directory: Path, client: redis.Redis, worker: WorkerProcess) -> None:
    try:
        until(lambda: set(ids) <= handled_ids(directory), 60, "every stored event handled")
    except AssertionError as exc:
        missing = sorted(set(ids) - handled_ids(directory))
        raise AssertionError(f"{exc}: missing {missing}; {pipeline_state(client)}\n{worker.log()}") from None


def test_a_worker_reconnects_by_itself_after_redis_is_killed_and_restarted(
    own_redis: RedisServer, workers: WorkerPool, handled_dir: Path
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    worker = workers.start(TASKS)
    worker.wait_reading(client)
    before = store_sync(client, vote_body())
    wait_handled([before], handled_dir, client, worker)

    own_redis.kill()  # kill -9: every connection of the worker drops at once
    time.sleep(2)  # the outage
    assert worker.running()
    own_redis.start()  # same port, same append-only file

    after = [store_sync(client, vote_body()) for _ in range(5)]  # this client reconnects too
    wait_handled(after, handled_dir, client, worker)

    assert worker.running()  # the same process all along: no restart, no new worker
    assert {line.pid for line in handled(handled_dir)} == {worker.pid}
    client.close()
    print(
        f"\nreconnect figures: Redis down 2 s; 1 event before, {len(after)} after, all handled by pid {worker.pid}"
    )


def test_a_worker_survives_an_outage_of_several_seconds_with_work_in_flight(
    own_redis: RedisServer, workers: WorkerPool, handled_dir: Path
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    worker = workers.start(TASKS)
    worker.wait_reading(client)
    stored = [store_sync(client, vote_body()) for _ in range(50)]

    own_redis.kill()  # probably mid-way through the 50: some handled, some queued, some unread
    handled_before = len(handled_ids(handled_dir))
    time.sleep(8)  # several seconds: each connection's retries back off to their 2 s cap
    assert worker.running()
    own_redis.start()

    wait_handled(stored, handled_dir, client, worker)
    assert worker.running()
    client.close()
    runs = len(handled(handled_dir))
    print(
        f"\nreconnect figures: Redis down 8 s with {len(stored) - handled_before} of {len(stored)} events "
        f"not yet handled; all {len(stored)} handled by pid {worker.pid} ({runs - len(stored)} duplicate runs)"
    )
