"""Every process on a managed-style Redis: TLS only, a private CA given as ``?ssl_ca_certs=``, an ACL
user. The edge stores, a worker handles, ``relay stats`` reads; and what each says when the password
or the certificate is wrong, or nothing listens."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relay.cli.devrun import EDGE_LIMITS
from tests.reliability.support import EdgeProcess, handled, until, vote
from tests.support.redis_server import free_port
from tests.support.tls_redis import PASSWORD, TlsRedisServer, make_ca
from tests.support.worker_process import ROOT, WorkerPool, worker_pool

pytestmark = pytest.mark.slow

SECRET = "k7Qm2vX9pL4rT8wZ3nB6yH1c"


def signed(body: bytes) -> dict[str, str]:
    """The signature header, computed here independently of `relay.edge.signature`."""
    return {"X-Sphere-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


def relay_env(url: str) -> dict[str, str]:
    return {"redis_url": url, "secret": SECRET, "log_level": "INFO", "worker_metrics": "off"}


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path_factory.mktemp("tls-redis")).start()
    yield server
    server.kill()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerPool]:
    with worker_pool(tmp_path, {"secret": SECRET, "worker_metrics": "off", "log_level": "INFO"}) as pool:
        yield pool


def test_edge_stores_worker_handles_and_stats_reads_over_tls_with_an_acl_user(
    tls_redis: TlsRedisServer, tmp_path: Path, handled_dir: Path, workers: WorkerPool
) -> None:
    url = tls_redis.url()
    edge = EdgeProcess(tmp_path, relay_env(url)).start()
    try:
        worker = workers.start("tests.reliability.tasks_files", redis_url=url)
        bodies = [vote(7_000_000 + i) for i in range(5)]
        for body in bodies:
            answer = httpx.post(f"{edge.url}/webhook", content=body, headers=signed(body), timeout=5)
            assert answer.status_code == 202, answer.text
        assert httpx.get(f"{edge.url}/readyz", timeout=5).status_code == 200

        until(lambda: len(handled(handled_dir)) >= 5, 30, f"5 votes handled:\n{worker.log()}")
        assert sorted(h.user_id for h in handled(handled_dir)) == [str(7_000_000 + i) for i in range(5)]

        stats = subprocess.run(
            [str(Path(sys.executable).with_name("relay")), "stats", "--json"],
            cwd=ROOT, env={**_clean_env(), "RELAY_REDIS_URL": url}, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["events"] == 5
        assert PASSWORD not in stats.stdout + stats.stderr
        assert PASSWORD not in edge.log() + worker.log()
    finally:
        edge.stop()


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}


def test_a_worker_with_a_wrong_password_exits_with_one_clear_line(
    tls_redis: TlsRedisServer, workers: WorkerPool
) -> None:
    wrong = "Wrong9password8for7tests"
    worker = workers.start("tests.reliability.tasks_files", redis_url=tls_redis.url(password=wrong))

    assert worker.wait_exit(within=20) == 1
    log = worker.log()
    assert "authentication failed" in log
    assert "RELAY_REDIS_URL" in log  # what to check
    assert wrong not in log
    assert "Traceback" not in log


def test_a_worker_that_cannot_verify_the_certificate_exits_with_one_clear_line(
    tls_redis: TlsRedisServer, workers: WorkerPool, tmp_path: Path
) -> None:
    worker = workers.start(
        "tests.reliability.tasks_files", redis_url=tls_redis.url(ca=make_ca(tmp_path, "stranger"))
    )

    assert worker.wait_exit(within=20) == 1
    assert "TLS verification failed" in worker.log()
    assert PASSWORD not in worker.log()


def test_a_worker_waiting_for_redis_says_why_each_time_and_stops_at_once_on_sigterm(
    workers: WorkerPool,
) -> None:
    port = free_port()  # nothing listens here
    worker = workers.start("tests.reliability.tasks_files", redis_url=f"redis://127.0.0.1:{port}/0")
    until(lambda: worker.log().count("connection refused") >= 2, 20, f"two warnings:\n{worker.log()}")
    assert "next try in" in worker.log()

    worker.terminate()
    started = time.monotonic()
    code = worker.wait_exit(within=10)
    stopped_after = time.monotonic() - started

    assert code == 0, worker.log()
    assert "stopped while waiting for Redis" in worker.log()
    print(f"worker stopped {stopped_after:.2f} s after SIGTERM")  # the bound is ~2 s


def test_an_edge_with_a_wrong_password_does_not_start(tls_redis: TlsRedisServer, tmp_path: Path) -> None:
    wrong = "Wrong9password8for7tests"
    env = {**_clean_env(), "RELAY_SECRET": SECRET, "RELAY_REDIS_URL": tls_redis.url(password=wrong)}
    args = [sys.executable, "-m", "uvicorn", "relay.app:app", "--port", str(free_port()), *EDGE_LIMITS]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)

    assert done.returncode != 0
    assert "authentication failed" in done.stderr
    assert wrong not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_an_edge_without_redis_starts_and_is_not_ready(tmp_path: Path) -> None:
    edge = EdgeProcess(tmp_path, relay_env(f"redis://127.0.0.1:{free_port()}/0")).start()
    try:
        answer = httpx.get(f"{edge.url}/readyz", timeout=5)
        assert answer.status_code == 503
        assert "cannot reach Redis" in edge.log()
        assert "connection refused" in edge.log()
    finally:
        edge.stop()
