"""``relay stats`` against a real Redis whose state was made by the real edge and worker code."""

from __future__ import annotations

import json
import os
import time

import pytest
from redis.asyncio import Redis

from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM, StoredEvent
from relay.core.settings import Settings
from relay.edge.rejections import RejectionRecorder
from tests.cli.cli_support import cli_env, invoke, with_redis
from tests.support.redis_server import free_port
from tests.worker.helpers import store, vote_body
from worker.bridge import Bridge
from worker.deadletter import Failure, write
from worker.enqueue import JobSpec, enqueue
from worker.heartbeat import HeartbeatWriter, InFlight
from worker.registry import Registry

pytestmark = pytest.mark.usefixtures(cli_env.__name__)


def test_an_empty_relay(redis_url: str) -> None:
    result = invoke(["stats", "--json"])

    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["events"] == 0
    assert stats["groups"] == []
    assert (stats["queue_jobs"], stats["dead_letters"], stats["refused"]) == (0, 0, 0)
    text = invoke(["stats"]).output
    assert "no consumer group yet" in text


async def _busy_relay(redis: Redis, settings: Settings) -> list[str]:
    """Three events; a live worker; a worker that read two and died before passing them on; a worker
    that died holding nothing; one queued job, one dead letter, and two refused requests."""
    ids = [await store(redis, vote_body()) for _ in range(3)]
    await Bridge(redis, Registry(), settings, consumer="worker-a").ensure_group()
    await HeartbeatWriter(redis, "worker-a", InFlight()).beat()  # worker-a lives; worker-b died
    await redis.xreadgroup(CONSUMER_GROUP, "worker-b", {EVENTS_STREAM: ">"}, count=2)  # never acknowledged
    await redis.xgroup_createconsumer(EVENTS_STREAM, CONSUMER_GROUP, "worker-c")  # no heartbeat, nothing held
    stored = await redis.xrange(EVENTS_STREAM)
    event = StoredEvent.from_entry(*stored[0])
    now_ms = int(time.time() * 1000)
    await enqueue(redis, [JobSpec.for_event(event, "reward_voter")], now_ms=now_ms, expires_ms=60_000)
    failure = Failure("RuntimeError", "role id not configured")
    await write(redis, event, handler="reward_voter", attempts=5, failure=failure, now_ms=now_ms)
    recorder = RejectionRecorder(redis, timeout=2.0)
    for _ in range(2):
        recorder.record({"client": ("127.0.0.1", 1), "headers": []}, 401, "invalid_signature", 0, b"", now_ms)
    await recorder.close()
    return ids


def test_the_numbers(redis_url: str, settings: Settings) -> None:
    ids = with_redis(redis_url, lambda redis: _busy_relay(redis, settings))
    result = invoke(["stats", "--json"])

    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert (stats["events"], stats["oldest_event_id"], stats["newest_event_id"]) == (3, ids[0], ids[2])
    [group] = stats["groups"]
    assert (group["name"], group["lag"], group["pending"], group["last_delivered_id"]) == (
        CONSUMER_GROUP,
        1,
        2,
        ids[1],
    )
    consumers = {c["name"]: c for c in group["consumers"]}
    assert set(consumers) == {"worker-a", "worker-b"}  # worker-c: stopped, holding nothing
    assert consumers["worker-a"]["pending"] == 0 and consumers["worker-a"]["oldest_pending_id"] is None
    assert consumers["worker-b"]["pending"] == 2 and consumers["worker-b"]["oldest_pending_id"] == ids[0]
    assert consumers["worker-b"]["oldest_pending_idle_ms"] >= 0
    assert (consumers["worker-a"]["live"], consumers["worker-b"]["live"]) == (True, False)
    [worker] = stats["workers"]
    assert (worker["name"], worker["pid"], worker["running"], worker["jobs_done"]) == (
        "worker-a",
        os.getpid(),
        [],
        0,
    )
    assert (stats["queue_jobs"], stats["queue_due"]) == (1, 1)
    assert stats["dead_letters"] == 1
    assert (stats["refused"], stats["refused_recorded"]) == (2, 2)

    text = invoke(["stats"]).output
    assert f"group {CONSUMER_GROUP}: lag 1, pending 2, 2 consumer(s)" in text
    assert f"worker-b: STOPPED (no heartbeat), pending 2 (oldest {ids[0]} waiting" in text
    assert "worker-a: live, pending 0" in text
    assert "worker-c" not in text
    assert "relay:worker:*  1 live" in text
    assert "1 jobs: 1 due or running, 0 waiting to retry" in text
    assert "1 dead letters  (relay dlq ls)" in text
    assert "2 requests refused, 2 recorded" in text


def test_watch_prints_a_snapshot_per_refresh(redis_url: str) -> None:
    result = invoke(["stats", "--watch", "0.1", "--iterations", "3", "--json"])

    assert result.exit_code == 0, result.output
    snapshots = [json.loads(line) for line in result.output.splitlines()]
    assert len(snapshots) == 3
    assert snapshots[0]["time_ms"] <= snapshots[1]["time_ms"] <= snapshots[2]["time_ms"]


def test_watch_without_a_value_uses_the_default_interval(redis_url: str) -> None:
    result = invoke(["stats", "--watch", "--iterations", "1"])

    assert result.exit_code == 0, result.output
    assert "events" in result.output


def test_an_unreachable_redis_exits_3_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("RELAY_REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    result = invoke(["stats"])

    assert result.exit_code == 3
    assert result.output.startswith(f"relay: cannot reach Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert len(result.output.splitlines()) == 1
    assert "hunter2" not in result.output


def test_watch_rides_out_an_unreachable_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    result = invoke(["stats", "--watch", "0.1", "--iterations", "2"])

    assert result.exit_code == 0
    assert result.output.count("cannot reach Redis") == 2


def test_a_url_that_is_not_redis_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_REDIS_URL", "http://user:hunter2@localhost/")
    result = invoke(["stats"])

    assert result.exit_code == 2
    assert "RELAY_REDIS_URL: not a Redis URL" in result.output
    assert "hunter2" not in result.output


def test_a_bad_setting_is_named_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_RETENTION_SECONDS", "forever-and-hunter2")
    result = invoke(["stats"])

    assert result.exit_code == 2
    assert "RELAY_RETENTION_SECONDS" in result.output
    assert "hunter2" not in result.output


def test_redis_url_flag_overrides_the_setting(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with_redis(redis_url, lambda client: client.xadd(EVENTS_STREAM, {"probe": "1"}))
    monkeypatch.setenv("RELAY_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing answers there

    result = invoke(["--redis-url", redis_url, "stats", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["events"] == 1


def test_a_redis_url_flag_that_is_not_redis_names_the_flag() -> None:
    result = invoke(["--redis-url", "http://user:hunter2@localhost/", "stats"])

    assert result.exit_code == 2
    assert "--redis-url: not a Redis URL" in result.output
    assert "hunter2" not in result.output
