"""Forwarding's secret and a token in a destination URL never leave the relay: a real worker delivers,
is refused and retries; its log, Redis and the operator's commands are searched for both."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import SECRET
from tests.security.test_secrets import BIN, assert_nowhere, redis_contents
from tests.support.forward_sink import Answer, forward_sink
from tests.support.worker_process import ROOT, WorkerProcess
from tests.worker.helpers import dead_letters_sync, store_sync, until, vote_body

pytestmark = pytest.mark.slow


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


def test_the_forwarding_secret_and_a_url_token_never_leave_the_relay(
    redis_url: str, store: redis.Redis, tmp_path: Path
) -> None:
    key = secrets.token_bytes(32)
    secret = "whsec_" + base64.b64encode(key).decode()
    token = f"canary-{secrets.token_hex(12)}"
    with forward_sink() as sink:
        url = f"{sink.url}?token={token}"
        sink.script = [Answer(410, body=b"gone"), Answer(503, body=b"busy")]
        settings = {"redis_url": redis_url, "secret": SECRET, "tasks": "tests.support.tasks_none"}
        settings |= {"forward_url": url, "forward_secret": secret, "worker_metrics": "off"}
        worker = WorkerProcess(tmp_path, "worker", settings).start()
        try:
            worker.wait_reading(store)
            for _ in range(3):
                store_sync(store, vote_body())
            until(lambda: len(sink.requests()) >= 3 and dead_letters_sync(store), 30, "three deliveries")
        finally:
            worker.terminate()
            worker.wait_exit()
        assert all(request.headers["webhook-signature"].startswith("v1,") for request in sink.requests())

    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {"RELAY_REDIS_URL": redis_url, "RELAY_FORWARD_URL": url, "RELAY_FORWARD_SECRET": secret}
    env |= {"RELAY_TASKS": "tests.support.tasks_none"}
    captured = {"worker log": worker.log(), "redis": redis_contents(store)}
    for command in (
        ["stats"],
        ["stats", "--json"],
        ["dlq", "ls"],
        ["dlq", "show", dead_letters_sync(store)[0].id],
    ):
        done = subprocess.run(
            [str(BIN / "relay"), *command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        captured[" ".join(command)] = f"{done.returncode}\n{done.stdout}\n{done.stderr}"

    # Positive controls: the capture holds what a leak would sit next to.
    assert "HTTP 410: gone" in captured["redis"] and "HTTP 503: busy" in captured["worker log"]
    assert "1 dead" in captured["stats"] and "HTTP 410" in captured["dlq ls"]
    for where, text in captured.items():
        assert_nowhere(token, where, text)
        assert_nowhere(secret, where, text)
        assert_nowhere(secret.removeprefix("whsec_"), where, text)
