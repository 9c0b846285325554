"""SIGTERM stops a worker promptly when its Redis is gone: the retries stop waiting (`StoppableBackoff`).

Without that, arq's shutdown retried its first command 20 times with a backoff of up to 2 s (~35 s)
before the process could end, and then ended it with a traceback and exit code 1.
"""

from __future__ import annotations

import time

import pytest

from tests.support.redis_server import RedisServer
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.slow


def test_sigterm_ends_a_worker_whose_redis_died(own_redis: RedisServer, lone_worker: WorkerProcess) -> None:
    own_redis.kill()
    time.sleep(0.5)  # let the worker notice: its next poll fails and starts retrying

    lone_worker.terminate()
    started = time.monotonic()
    code = lone_worker.wait_exit(within=15)  # a bound on hanging, well under the ~35 s it took
    print(f"worker exited {time.monotonic() - started:.1f} s after SIGTERM, code {code}")

    assert code == 0, lone_worker.log()  # arq's shutdown did not end in an uncaught error
    assert "stopping without Redis: connection refused" in lone_worker.log()
