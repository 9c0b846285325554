"""The ``relay`` console script as an operator runs it: a real process, next to a real edge and a real
worker process, with settings from the environment only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import free_port
from tests.support.task_runs import runs
from tests.support.worker_process import ROOT, WorkerPool, worker_pool
from tests.worker.helpers import until

RELAY = Path(sys.executable).with_name("relay")
TASKS = "tests.support.tasks_record"


def relay(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (``pip install -e .`` puts it next to the venv's python)."""
    return subprocess.run(
        [str(RELAY), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
    return {**clean, "RELAY_REDIS_URL": redis_url, "RELAY_SECRET": SECRET, "RELAY_TASKS": TASKS}


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerPool]:
    with worker_pool(tmp_path, {"redis_url": redis_url, "secret": SECRET}) as pool:
        yield pool


def handled(client: redis.Redis) -> list[tuple[str, str]]:
    return sorted((r["handler"], r["event_id"]) for r in runs(client))


@pytest.mark.slow
def test_send_then_replay_through_a_worker_process(
    redis_url: str, env: dict[str, str], client: redis.Redis, workers: WorkerPool
) -> None:
    assert RELAY.exists(), "install the relay first: .venv/bin/pip install -e ."
    workers.start(TASKS).wait_reading(client)
    with running_edge(make_settings(redis_url)) as base_url:
        sent = relay("send", "vote", "--url", f"{base_url}/webhook", env=env)
        assert sent.returncode == 0, sent.stderr
        status, outcome, entry_id = sent.stdout.split()
        assert (status, outcome) == ("202", "queued")
        until(lambda: len(runs(client)) == 2, 30, "both handlers ran")

        replayed = relay("replay", "--since", "10m", "--handler", "audit", "--rate", "0", env=env)
        assert replayed.returncode == 0, replayed.stderr
        assert "1 job(s) for audit" in replayed.stdout
        until(lambda: len(runs(client)) == 3, 30, "the replay ran")

    assert handled(client) == [("audit", entry_id), ("audit", entry_id), ("reward_voter", entry_id)]
    stats = relay("stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    [group] = json.loads(stats.stdout)["groups"]
    assert group["lag"] == 0 and group["pending"] == 0 and group["consumers"]


def test_unreachable_redis_is_one_line_and_exit_3(env: dict[str, str]) -> None:
    port = free_port()
    env["RELAY_REDIS_URL"] = f"redis://default:hunter2@127.0.0.1:{port}/0"
    for command in (["stats"], ["dlq", "purge", "--older-than", "7d", "--yes"]):
        result = relay(*command, env=env)
        assert result.returncode == 3, (command, result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith(
            f"relay: cannot reach Redis at redis://default:***@127.0.0.1:{port}/0"
        )
        assert len(result.stderr.splitlines()) == 1
        assert "hunter2" not in result.stderr


def test_help_and_usage_errors(env: dict[str, str]) -> None:
    assert "relay replay --since 2h" in relay("--help", env=env).stdout
    wrong = relay("no-such-command", env=env)
    assert wrong.returncode == 2 and "No such command" in wrong.stderr
