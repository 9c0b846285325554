"""The application as deployed: probes, docs, and the pinned ``relay.app:app`` run by uvicorn."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relay.core.settings import SAMPLE_SECRETS, Settings
from tests.conftest import SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer, free_port

VOTE = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"2"}'


@pytest.fixture
def edge_url(settings: Settings) -> Iterator[str]:
    with running_edge(settings) as url:
        yield url


def test_healthz_says_alive(edge_url: str) -> None:
    response = httpx.get(f"{edge_url}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_readyz_is_200_when_redis_answers(edge_url: str) -> None:
    response = httpx.get(f"{edge_url}/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_without_redis_the_edge_is_alive_but_not_ready() -> None:
    with running_edge(make_settings(f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.5)) as url:
        alive = httpx.get(f"{url}/healthz")
        ready = httpx.get(f"{url}/readyz")

    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.json() == {"error": "redis_unavailable"}
    assert ready.headers["retry-after"]


def test_docs_and_openapi_are_off_the_public_port_by_default(edge_url: str) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        response = httpx.get(f"{edge_url}{path}")

        assert response.status_code == 404, path
        assert "openapi" not in response.text.lower()


def test_openapi_documents_the_webhook(redis_url: str) -> None:
    with running_edge(make_settings(redis_url, openapi=True)) as url:
        docs = httpx.get(f"{url}/docs")
        schema = httpx.get(f"{url}/openapi.json").json()

    assert docs.status_code == 200

    operation = schema["paths"]["/webhook"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["X-Sphere-Signature"]
    assert {"200", "202", "400", "401", "413", "422", "503"} <= set(operation["responses"])
    assert {"VoteAdd", "ReviewAdd", "Event"} <= set(schema["components"]["schemas"])
    assert {"/healthz", "/readyz"} <= set(schema["paths"])


# -- `relay.app:app`, the pinned entry point, in fresh processes -------------------------------


def clean_env(**relay: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(relay)
    return env


def python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_importing_the_module_reads_no_settings(tmp_path: Path) -> None:
    result = python("import relay.app", clean_env(), tmp_path)

    assert result.returncode == 0, result.stderr


def test_app_without_a_secret_exits_naming_the_variable(tmp_path: Path) -> None:
    result = python("import relay.app; relay.app.app", clean_env(), tmp_path)

    assert result.returncode == 1
    assert "RELAY_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sample", sorted(SAMPLE_SECRETS))
def test_app_with_the_sample_secret_refuses_to_start(tmp_path: Path, sample: str) -> None:
    result = python("from relay.app import app", clean_env(RELAY_SECRET=sample), tmp_path)

    assert result.returncode == 1
    assert "RELAY_SECRET" in result.stderr
    assert "sample" in result.stderr
    assert sample not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_uvicorn_serves_relay_app_app_with_json_logs(tmp_path: Path, shared_redis: RedisServer) -> None:
    shared_redis.flush()
    port = free_port()
    env = clean_env(RELAY_SECRET=SECRET, RELAY_REDIS_URL=shared_redis.url, RELAY_LOG_FORMAT="json")
    command = [sys.executable, "-m", "uvicorn", "relay.app:app", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, "uvicorn exited during start-up"
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.05)
        signature = hmac.new(SECRET.encode(), VOTE, hashlib.sha256).hexdigest()
        response = httpx.post(f"{base}/webhook", content=VOTE, headers={"X-Sphere-Signature": signature})
        assert response.status_code == 202
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)

    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    outcomes = [line for line in lines if line.get("logger") == "relay.edge.webhook"]
    assert len(outcomes) == 1
    assert outcomes[0]["outcome"] == "queued"
    assert outcomes[0]["status"] == 202
    assert outcomes[0]["entry_id"] == response.json()["id"]
    assert outcomes[0]["event_type"] == "VOTE_ADD"
    assert outcomes[0]["bytes"] == len(VOTE)
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # uvicorn's lines are JSON too
    assert not any(line["logger"] == "uvicorn.access" for line in lines)  # --no-access-log holds
    assert SECRET not in stderr
    assert VOTE.decode() not in stderr
