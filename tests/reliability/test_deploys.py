"""A deploy of the edge loses no vote (docs/deploy.md, "Deploying a new version without losing a vote").

Real processes: a redis-server, the edge as production runs it (``uvicorn relay.app:app`` with the
image's flags), and `bench.deploys`' sender, which retries as top.gg v1 does (1, 2 and 4 s after a
failure, 5 s per attempt). Each deploy begins with a request stalled mid-body on the edge, the case
that made a plain restart lose votes. Every acknowledged vote must be in the stream.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from bench.deploys import Plan, measure_reload, measure_restart, slow_client
from tests.security.edge_process import PRODUCTION_FLAGS, EdgeProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

PLAN = Plan(scheme="topgg", rate=20.0, duration=10.0, deploys=1)
"""top.gg v1 votes to ``POST /webhook/topgg`` for 10 s at 20/s, the edge deployed once in the middle."""


def test_a_restart_loses_no_vote(tmp_path: Path) -> None:
    run = measure_restart(tmp_path, PLAN)

    assert run.tally.sent == 200 and len(run.deploy_seconds) == 1
    assert (run.tally.count("lost"), run.tally.count("refused"), run.missing) == (0, 0, 0), run.line()


# Only a timeout may fail an attempt in the next two: on a starved machine a vote can wait in the
# backlog longer than top.gg's 5 s, but no connection is ever refused or cut.
NEVER = {"refused", "reset"}


def test_a_restart_on_a_held_socket_refuses_no_connection(tmp_path: Path) -> None:
    # As under a systemd socket unit: connections wait in the socket's backlog for the new edge.
    run = measure_restart(tmp_path, PLAN, held=True)

    assert run.tally.sent == 200 and len(run.deploy_seconds) == 1
    assert run.lost == 0 and not NEVER & set(run.tally.failures), run.line()


def test_a_reload_of_two_workers_refuses_no_connection(tmp_path: Path) -> None:
    run = measure_reload(tmp_path, PLAN)

    assert run.tally.sent == 200 and len(run.deploy_seconds) == 1
    assert run.lost == 0 and not NEVER & set(run.tally.failures), run.line()


def test_a_stop_cuts_a_stalled_request_rather_than_wait_for_its_body(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    # Without --timeout-graceful-shutdown, SIGTERM would wait for the body (RELAY_BODY_TIMEOUT, then
    # a 408) with the port closed meanwhile: longer than top.gg's retries, and votes were lost.
    env = {
        **os.environ,
        "RELAY_SECRET": "s" * 64,
        "RELAY_REDIS_URL": own_redis.url,
        "RELAY_BODY_TIMEOUT": "60",
    }
    edge = EdgeProcess(env, tmp_path / "edge.log", *PRODUCTION_FLAGS).wait_ready()
    try:
        stalled = slow_client(edge.port)
        stalled.settimeout(30)
        edge.process.send_signal(signal.SIGTERM)

        # uvicorn exits by the signal it got, once stopped.
        assert edge.process.wait(timeout=30) in (0, -signal.SIGTERM), edge.log()
        answer = stalled.recv(4096)
        # 503 (never uvicorn's 500), at once rather than a 408 once the body's time is up.
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b'{"error":"shutting_down"}' in answer
        stalled.close()
    finally:
        edge.stop()
