"""Forwarding through real processes: a worker process running only the built-in forwarding handlers
(``RELAY_FORWARD_URL``), delivering to a real HTTP receiver that is down, refuses, rate-limits or hangs.

Waits are bounded polls, never sleeps; the one timing assertion is a lower bound (a delay asked for
was honoured), never a speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from relay.core.keys import outcome_redis_key
from tests.support.forward_sink import Answer, Sink, forward_sink
from tests.support.processes import stop
from tests.support.receivers import receiver_command
from tests.support.redis_server import free_port
from tests.support.worker_process import ROOT, WorkerPool
from tests.worker.forward.signing import FORWARD_SECRET, expected_webhook_id, signature_ok
from tests.worker.helpers import dead_letters_sync, review_body, store_sync, until, vote_body
from worker.forward.destination import Destination

pytestmark = pytest.mark.slow

NO_HANDLERS = "tests.support.tasks_none"
RELAY = Path(sys.executable).with_name("relay")


@pytest.fixture
def sink() -> Iterator[Sink]:
    with forward_sink() as running:
        yield running


def forwarding(workers: WorkerPool, url: str, **settings: str) -> None:
    workers.start(
        NO_HANDLERS, forward_url=url, forward_secret=FORWARD_SECRET, worker_metrics="off", **settings
    )


def state(client: redis.Redis, entry_id: str, handler: str) -> str | None:
    raw = client.hget(outcome_redis_key(entry_id), handler)
    return json.loads(raw)["state"] if raw else None


@pytest.fixture
def receiver_log(tmp_path: Path) -> Path:
    return tmp_path / "receiver.log"


def received_ids(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line)["received"] for line in lines if line.startswith('{"received"')]


def relay(redis_url: str, forward_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``relay`` command with the workers' settings (it learns the destinations from them)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
    env.update(RELAY_REDIS_URL=redis_url, RELAY_TASKS=NO_HANDLERS, RELAY_FORWARD_URL=forward_url)
    return subprocess.run(
        [str(RELAY), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def destination_states(redis_url: str, forward_url: str) -> dict[str, tuple[int, int, int]]:
    done = relay(redis_url, forward_url, "stats", "--json")
    assert done.returncode == 0, done.stderr
    return {
        d["name"]: (d["delivered"], d["retrying"], d["dead"]) for d in json.loads(done.stdout)["destinations"]
    }


@pytest.mark.parametrize("language", ["python", "javascript"])
def test_a_receiver_that_comes_up_late_gets_every_event_signed_with_stable_ids(
    client: redis.Redis, workers: WorkerPool, receiver_log: Path, redis_url: str, language: str
) -> None:
    command = receiver_command(language)  # the example receivers: FastAPI, and node where installed
    port = free_port()
    url = f"http://127.0.0.1:{port}/relay"
    handler = Destination(url).name
    forwarding(workers, url)
    entries = [store_sync(client, vote_body() if n % 4 else review_body()) for n in range(20)]
    until(
        lambda: all(state(client, e, handler) == "retrying" for e in entries),
        40,
        "every delivery failed once (nobody listening) and waits for its retry",
    )
    [(delivered, retrying, dead)] = destination_states(redis_url, url).values()
    assert (delivered, dead) == (0, 0) and 1 <= retrying <= 20  # some retries may be due already

    env = {**os.environ, "RELAY_FORWARD_SECRET": FORWARD_SECRET, "PORT": str(port)}
    with receiver_log.open("wb") as log:
        receiver = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        until(lambda: len(received_ids(receiver_log)) >= 20, 60, "the receiver got all 20 events")
    finally:
        stop(receiver)
    # The example receiver logs an event only once it verified its signature and timestamp.
    ids = received_ids(receiver_log)
    assert sorted(ids) == sorted(expected_webhook_id(e, url) for e in entries)
    until(lambda: all(state(client, e, handler) == "done" for e in entries), 10, "every outcome is done")
    assert destination_states(redis_url, url) == {handler: (20, 0, 0)}
    text = relay(redis_url, url, "stats")
    assert f"forward   {handler}: 20 delivered, 0 retrying, 0 dead" in text.stdout


def test_429_with_retry_after_is_tried_again_no_sooner_than_asked(
    client: redis.Redis, workers: WorkerPool, sink: Sink
) -> None:
    sink.script = [Answer(429, {"Retry-After": "3"}, b"slow down")]
    forwarding(workers, sink.url)
    entry_id = store_sync(client, vote_body())

    first, second = until(lambda: sink.requests()[:2] if len(sink.requests()) >= 2 else None, 40, "a retry")
    assert second.at - first.at >= 2.5
    assert first.webhook_id == second.webhook_id == expected_webhook_id(entry_id, sink.url)
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"]) + 2
    assert all(signature_ok(FORWARD_SECRET, r.headers, r.body) for r in (first, second))
    assert first.body == second.body
    body = json.loads(second.body)
    assert (body["type"], body["source"], body["event_id"]) == ("VOTE_ADD", "sphere", entry_id)


def test_410_is_dead_lettered_at_once_and_a_replay_sends_the_same_id(
    client: redis.Redis, workers: WorkerPool, sink: Sink, redis_url: str
) -> None:
    sink.default = Answer(410, body=b"this bot left the server")
    forwarding(workers, sink.url)
    entry_id = store_sync(client, vote_body())

    [letter] = until(lambda: dead_letters_sync(client), 30, "a dead letter")
    assert (letter.entry_id, letter.handler, letter.attempts) == (entry_id, Destination(sink.url).name, 1)
    assert letter.error_type == "Permanent"
    assert "HTTP 410" in letter.error and "this bot left the server" in letter.error
    assert len(sink.requests()) == 1
    assert destination_states(redis_url, sink.url) == {letter.handler: (0, 0, 1)}

    sink.default = Answer(204)
    done = relay(redis_url, sink.url, "dlq", "replay", letter.id)
    assert done.returncode == 0, done.stderr
    again = until(lambda: sink.requests()[1:], 30, "the replay's delivery")
    assert again[0].webhook_id == sink.requests()[0].webhook_id
    assert signature_ok(FORWARD_SECRET, again[0].headers, again[0].body)


def test_a_worker_killed_mid_delivery_delivers_again_with_the_same_id(
    client: redis.Redis, workers: WorkerPool, sink: Sink
) -> None:
    sink.script = [Answer(204, stall=30)]  # the first request hangs until the worker is gone
    forwarding(workers, sink.url, forward_timeout="2")
    entry_id = store_sync(client, vote_body())
    until(lambda: sink.requests(), 30, "the first delivery reached the receiver")
    workers.kill_all()

    forwarding(workers, sink.url, forward_timeout="2")
    first, second = until(lambda: sink.requests()[:2] if len(sink.requests()) >= 2 else None, 60, "again")
    assert first.webhook_id == second.webhook_id == expected_webhook_id(entry_id, sink.url)
    assert signature_ok(FORWARD_SECRET, second.headers, second.body)


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (None, "is required when RELAY_FORWARD_URL is set"),
        ("whsec_c2hvcnQta2V5", "is weak"),
        ("not-a-whsec-secret-at-all-0123456789", "must start with whsec_"),
    ],
)
def test_a_worker_refuses_to_start_forwarding_without_a_strong_secret(
    workers: WorkerPool, secret: str | None, why: str
) -> None:
    settings = {"forward_url": "http://127.0.0.1:9/relay"}
    if secret is not None:
        settings["forward_secret"] = secret
    worker = workers.start(NO_HANDLERS, **settings)
    assert worker.wait_exit() != 0
    [line] = [line for line in worker.log().splitlines() if "RELAY_" in line]
    assert "RELAY_FORWARD_SECRET" in line and why in line
    if secret is not None:
        assert secret not in worker.log()
