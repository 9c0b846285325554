"""SIGTERM stops a worker promptly when its Redis is gone: the retries stop waiting (`StoppableBackoff`).

Without that, arq's shutdown retried its first command 20 times with a backoff of up to 2 s (~35 s)
before the process could end, and then ended it with a traceback and exit code 1.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.worker_process import worker_pool

pytestmark = pytest.mark.slow

SECRET = "k7Qm2vX9pL4rT8wZ3nB6yH1c"


def test_sigterm_ends_a_worker_whose_redis_died(own_redis: RedisServer, tmp_path: Path) -> None:
    settings = {"redis_url": own_redis.url, "secret": SECRET, "worker_metrics": "off"}
    with worker_pool(tmp_path, settings) as pool:
        worker = pool.start("tests.support.tasks_record")
        client = redis.Redis.from_url(own_redis.url)
        try:
            worker.wait_reading(client)
        finally:
            client.close()
        own_redis.kill()
        time.sleep(0.5)  # let the worker notice: its next poll fails and starts retrying

        worker.terminate()
        started = time.monotonic()
        code = worker.wait_exit(within=15)  # a bound on hanging, well under the ~35 s it took
        print(f"worker exited {time.monotonic() - started:.1f} s after SIGTERM, code {code}")

        assert code == 0, worker.log()  # arq's shutdown did not end in an uncaught error
        assert "stopping without Redis: connection refused" in worker.log()
