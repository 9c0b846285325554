"""Fixtures for tests that drive real worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import SECRET
from tests.support.redis_server import RedisServer
from tests.support.worker_process import WorkerPool, WorkerProcess, worker_pool


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerPool]:
    """Starts ``arq worker.main.WorkerSettings`` processes on the test's Redis; kills them at the end."""
    with worker_pool(tmp_path, {"redis_url": redis_url, "secret": SECRET, "log_level": "INFO"}) as pool:
        yield pool


@pytest.fixture
def lone_worker(own_redis: RedisServer, tmp_path: Path) -> Iterator[WorkerProcess]:
    """One worker process on a Redis of the test's own (to kill), already reading the stream."""
    settings = {"redis_url": own_redis.url, "secret": "k7Qm2vX9pL4rT8wZ3nB6yH1c", "worker_metrics": "off"}
    with worker_pool(tmp_path, settings) as pool:
        worker = pool.start("tests.support.tasks_record")
        client = redis.Redis.from_url(own_redis.url)
        try:
            worker.wait_reading(client)
        finally:
            client.close()
        yield worker
