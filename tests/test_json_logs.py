"""``RELAY_LOG_FORMAT=json``: every line a real worker and a real edge write is one JSON object, every
line about an event names it, and no secret or body shows up.

Both run as production does, in processes of their own (``arq worker.main.WorkerSettings``,
``uvicorn relay.app:app``), and their whole output is read back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import PREVIOUS_SECRET, SECRET
from tests.support.redis_server import free_port
from tests.support.task_runs import runs
from tests.support.worker_process import ROOT, worker_pool
from tests.worker.helpers import dead_letters_sync, review_body, store_sync, until, vote_body

pytestmark = pytest.mark.slow

EVENT_FIELDS = ("entry_id", "event_type", "handler", "attempt")


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of `output` parsed as one JSON object (a traceback would be inside one, as ``exc``)."""
    lines = output.splitlines()
    assert lines, "no output at all"
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"line {number} is not JSON: {line!r}")
        assert isinstance(document, dict), line
        assert {"ts", "level", "logger", "message"} <= set(document), line
        parsed.append(document)
    return parsed


def test_a_worker_run_logs_json_lines_naming_entry_type_handler_and_attempt(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    settings = {
        "redis_url": redis_url,
        "secret": SECRET,
        "log_format": "json",
        "log_level": "INFO",
        "worker_metrics": "off",
    }
    with worker_pool(tmp_path, settings) as pool:
        worker = pool.start("tests.support.tasks_outcomes")
        worker.wait_reading(client)
        bodies = [vote_body(), vote_body(), review_body()]
        for body in bodies:
            store_sync(client, body)
        until(lambda: len(runs(client)) >= 9 and len(dead_letters_sync(client)) >= 2, 30, "every run")
        worker.terminate()
        assert worker.wait_exit() == 0
        output = worker.log()
    client.close()

    lines = json_lines(output)

    about_runs = [line for line in lines if line["logger"] == "worker.jobs"]
    assert about_runs
    for line in about_runs:
        missing = [field for field in EVENT_FIELDS if field not in line]
        assert not missing, f"{line} lacks {missing}"
        assert isinstance(line["attempt"], int) and line["attempt"] >= 1
    by_level = {
        level: sum(1 for line in about_runs if line["level"] == level)
        for level in ("INFO", "WARNING", "ERROR")
    }
    assert by_level == {"INFO": 4, "WARNING": 3, "ERROR": 2}  # 4 successes, 3 retries, 2 dead letters
    assert {(line["handler"], line["attempt"]) for line in about_runs if line["level"] == "ERROR"} == {
        ("doomed", 2),
        ("refuse", 1),
    }
    assert all("entry_id" in line for line in lines if "event_type" in line)
    assert not [line for line in lines if line["logger"].startswith("arq") and "→" in line["message"]]
    assert any(
        line["logger"] == "arq.worker" and line["message"].startswith("Starting worker") for line in lines
    )
    assert SECRET not in output
    for body in bodies:
        assert json.loads(body)["user_id"] not in output  # no body, not even a part of one


def test_the_edge_logs_json_lines_with_no_secret_and_no_body(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "edge.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
    env.update(
        RELAY_SECRET=SECRET,
        RELAY_PREVIOUS_SECRETS=PREVIOUS_SECRET,
        RELAY_REDIS_URL=redis_url,
        RELAY_LOG_FORMAT="json",
        RELAY_LOG_LEVEL="INFO",
    )
    command = [sys.executable, "-m", "uvicorn", "relay.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        edge = subprocess.Popen([*command, "--no-access-log"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        until(lambda: _answers(f"{base}/healthz"), 20, "the edge answers")
        vote = vote_body()
        signature = hmac.new(SECRET.encode(), vote, hashlib.sha256).hexdigest()
        with httpx.Client(base_url=base, timeout=10) as http:
            queued = http.post("/webhook", content=vote, headers={"X-Sphere-Signature": signature})
            duplicate = http.post("/webhook", content=vote, headers={"X-Sphere-Signature": signature})
            forged = http.post("/webhook", content=vote, headers={"X-Sphere-Signature": "0" * 64})
            broken = b'{"event":"VOTE_ADD","guild_id":'
            invalid = http.post(
                "/webhook",
                content=broken,
                headers={"X-Sphere-Signature": hmac.new(SECRET.encode(), broken, hashlib.sha256).hexdigest()},
            )
        assert (queued.status_code, duplicate.status_code, forged.status_code, invalid.status_code) == (
            202,
            200,
            401,
            400,
        )
    finally:
        edge.send_signal(signal.SIGTERM)
        edge.wait(timeout=20)
    output = log_path.read_text()

    lines = json_lines(output)

    requests = [line for line in lines if line["logger"] == "relay.edge.webhook"]
    assert [(line["outcome"], line["status"]) for line in requests] == [
        ("queued", 202),
        ("duplicate", 200),
        ("invalid_signature", 401),
        ("invalid_body", 400),
    ]
    entry_id = queued.json()["id"]
    assert [line.get("entry_id") for line in requests[:2]] == [entry_id, entry_id]
    assert [line.get("event_type") for line in requests[:2]] == ["VOTE_ADD", "VOTE_ADD"]
    assert any(line["message"] == "edge ready" for line in lines)
    assert SECRET not in output and PREVIOUS_SECRET not in output
    assert json.loads(vote)["user_id"] not in output
    assert signature not in output


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
