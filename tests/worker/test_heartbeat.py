"""A real worker's heartbeat (``relay:worker:<consumer name>``) and ``python -m worker.health``.

The heartbeat shows the job in flight, counts it once done, and is deleted on a clean stop; the
health command passes for a beating worker and fails for one whose loop is stopped (SIGSTOP), whose
Redis is gone, or that has stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from relay.core.heartbeat import EXPIRE_SECONDS, Heartbeat
from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM, WORKER_HEARTBEAT_PREFIX, worker_heartbeat_key
from tests.reliability.support import until
from tests.support.redis_server import RedisServer
from tests.support.task_runs import RELEASE, runs
from tests.support.worker_process import ROOT, WorkerPool, WorkerProcess
from tests.worker.helpers import store_sync, vote_body

pytestmark = pytest.mark.slow


def beats(client: redis.Redis) -> list[Heartbeat]:
    return [
        Heartbeat.from_hash(client.hgetall(key)) for key in client.scan_iter(f"{WORKER_HEARTBEAT_PREFIX}*")
    ]


def beat_of(client: redis.Redis, worker: WorkerProcess) -> Heartbeat | None:
    return next((b for b in beats(client) if b.pid == worker.pid), None)


def health(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")} | {"RELAY_REDIS_URL": redis_url}
    return subprocess.run(
        [sys.executable, "-m", "worker.health", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_heartbeat_shows_the_job_in_flight_counts_it_and_goes_on_a_clean_stop(
    client: redis.Redis, workers: WorkerPool
) -> None:
    worker = workers.start("tests.support.tasks_slow")
    worker.wait_reading(client)
    beat = until(lambda: beat_of(client, worker), 20, "a heartbeat")
    consumers = [c["name"].decode() for c in client.xinfo_consumers(EVENTS_STREAM, CONSUMER_GROUP)]
    assert beat.name in consumers  # the heartbeat's name is the worker's consumer name
    assert 0 < client.ttl(worker_heartbeat_key(beat.name)) <= EXPIRE_SECONDS
    assert beat.started_ms <= beat.beat_ms

    entry_id = store_sync(client, vote_body())
    until(lambda: runs(client), 20, "the handler started")
    running = until(lambda: (b := beat_of(client, worker)) and b.running, 15, "the job in the heartbeat")
    assert [(r.handler, r.entry_id) for r in running] == [("slow", entry_id)]

    client.rpush(RELEASE, b"go")
    until(lambda: (b := beat_of(client, worker)) and b.jobs_done == 1 and not b.running, 15, "the job done")

    worker.terminate()
    assert worker.wait_exit() == 0
    assert not client.exists(worker_heartbeat_key(beat.name))


def test_health_passes_for_a_beating_worker_and_fails_when_its_loop_stops_or_it_stops(
    client: redis.Redis, redis_url: str, workers: WorkerPool
) -> None:
    worker = workers.start("tests.support.tasks_record")
    until(lambda: beat_of(client, worker), 20, "a heartbeat")

    ok = health(redis_url, "--pid", str(worker.pid))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("healthy:")

    assert worker.process is not None
    worker.process.send_signal(signal.SIGSTOP)  # the loop is stuck
    try:
        stuck = until(
            lambda: (
                (done := health(redis_url, "--pid", str(worker.pid), "--stale-seconds", "6")).returncode
                and done
            ),
            20,
            "health failing for a stuck worker",
            every=1.0,
        )
        assert "unhealthy:" in stuck.stderr and "stuck, or cut off from Redis" in stuck.stderr
    finally:
        worker.process.send_signal(signal.SIGCONT)
    until(lambda: health(redis_url, "--pid", str(worker.pid)).returncode == 0, 20, "healthy again", every=0.5)

    worker.terminate()
    assert worker.wait_exit() == 0
    gone = health(redis_url, "--pid", str(worker.pid))
    assert gone.returncode == 1
    assert "no heartbeat" in gone.stderr


def test_health_fails_when_redis_is_gone(own_redis: RedisServer, lone_worker: WorkerProcess) -> None:
    client = redis.Redis.from_url(own_redis.url)
    try:
        until(lambda: beat_of(client, lone_worker), 20, "a heartbeat")
    finally:
        client.close()
    assert health(own_redis.url).returncode == 0

    own_redis.kill()
    cut_off = health(own_redis.url)

    assert cut_off.returncode == 1
    assert "cannot read heartbeats from Redis" in cut_off.stderr
    assert "Traceback" not in cut_off.stderr


def test_a_running_worker_says_when_it_cannot_reach_redis_and_when_it_can_again(
    own_redis: RedisServer, lone_worker: WorkerProcess
) -> None:
    own_redis.kill()
    lone_worker.wait_for_log("next try in 5 s")
    assert f"cannot reach Redis at {own_redis.url}: connection refused" in lone_worker.log()
    own_redis.start()
    lone_worker.wait_for_log("answers again")
    assert lone_worker.running()


def consumer_names(client: redis.Redis) -> set[str]:
    return {c["name"].decode() for c in client.xinfo_consumers(EVENTS_STREAM, CONSUMER_GROUP)}


def test_a_killed_workers_consumer_leaves_the_group_and_relay_stats_once_the_claim_idle_time_passed(
    client: redis.Redis, redis_url: str, workers: WorkerPool
) -> None:
    short = {"claim_idle_seconds": "1", "worker_metrics": "off"}
    survivor = workers.start("tests.support.tasks_record", **short)
    killed = workers.start("tests.support.tasks_record", **short)
    live = until(lambda: beat_of(client, survivor), 20, "the survivor's heartbeat")
    dead = until(lambda: beat_of(client, killed), 20, "the killed worker's heartbeat")
    assert consumer_names(client) == {live.name, dead.name}

    killed.kill()  # kill -9: its heartbeat stays until it expires, its consumer until a live worker removes it
    until(lambda: consumer_names(client) == {live.name}, 60, "only the live worker's consumer", every=0.5)

    entry_id = store_sync(client, vote_body())  # the group still works: the survivor handles it
    until(lambda: client.xpending(EVENTS_STREAM, CONSUMER_GROUP)["pending"] == 0, 20, "the entry handed on")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")} | {"RELAY_REDIS_URL": redis_url}
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("relay")), "stats"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"1 consumer(s), last read {entry_id}" in shown.stdout
    assert f"{live.name}: live, pending 0" in shown.stdout
    assert dead.name not in shown.stdout and "STOPPED" not in shown.stdout
    assert f"{WORKER_HEARTBEAT_PREFIX}*  1 live" in shown.stdout
