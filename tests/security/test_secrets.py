"""The configured secret never leaves the relay: not in a log line, an answer, ``/metrics``, Redis,
``relay stats`` or any other ``relay`` command, nor in a start-up error.

A real edge and a real worker run with a distinctive secret (and a previous one), at DEBUG, in both
log formats; the test sends good and bad requests of every kind (signed with the secret, which
itself is never sent), lets the worker handle and dead-letter events, runs the CLI, then greps
everything captured for the secret in several spellings. Positive controls make sure the capture
really holds what it should, so an empty log cannot pass.

Constant-time comparison cannot be measured reliably in a test; the last test checks how
`relay.edge.signature` compares instead.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import inspect
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from relay.core.keys import DEAD_STREAM, EVENTS_STREAM, REJECTED_STREAM
from relay.edge import signature
from tests.security.edge_process import BIN, PRODUCTION_FLAGS, EdgeProcess, run_to_exit
from tests.support.worker_process import ROOT, WorkerProcess

VOTE = b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"258317078560243712"}'
REVIEW = json.dumps(
    {
        "event": "REVIEW_ADD",
        "guild_id": "1",
        "user_id": "2",
        "review": {
            "id": "77",
            "published_timestamp": 1,
            "stars": 4,
            "content": {"title": "t", "description": "d"},
        },
    }
).encode()


EXPECTED_STATUSES = [202, 200, 202, 202, 401, 401, 401, 400, 422, 413, 405, 404, 200, 200, 200, 200, 200]
"""What `exercise` gets, request by request."""


def spellings(secret: str) -> list[str]:
    """The secret as text, hex, base64 and Python's repr of its bytes: how a leak would look."""
    raw = secret.encode()
    return [secret, raw.hex(), base64.b64encode(raw).decode(), repr(raw), secret.upper()]


def assert_nowhere(secret: str, where: str, text: str) -> None:
    for spelling in spellings(secret):
        assert spelling not in text, f"the secret appears in {where} (as {spelling!r})"


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def off_by_one_digit(signature: str) -> str:
    """`signature` with its last hex digit changed (always changed: the secret is random per run)."""
    return signature[:-1] + ("1" if signature[-1] == "0" else "0")


def environment(redis_url: str, secret: str, previous: str, log_format: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
    env.update(
        {
            "RELAY_SECRET": secret,
            "RELAY_PREVIOUS_SECRETS": previous,
            "RELAY_REDIS_URL": redis_url,
            "RELAY_LOG_FORMAT": log_format,
            "RELAY_LOG_LEVEL": "DEBUG",
            "RELAY_MAX_BODY_BYTES": "2048",
            "RELAY_TASKS": "tests.security.tasks_secrets",
            "RELAY_METRICS": "on",
            "RELAY_OPENAPI": "true",  # /docs and /openapi.json too, to search them for the secret
            "RELAY_WORKER_METRICS": "off",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def exercise(http: httpx.Client, secret: str, previous: str) -> list[httpx.Response]:
    """Every kind of request the edge answers; bodies are signed, the secret itself never sent."""
    other_vote = VOTE.replace(b"258317078560243712", b"9")
    requests = [
        ("POST", "/webhook", VOTE, {"X-Sphere-Signature": sign(VOTE, secret)}),
        ("POST", "/webhook", VOTE, {"X-Sphere-Signature": sign(VOTE, secret)}),  # duplicate
        ("POST", "/webhook", other_vote, {"X-Sphere-Signature": "sha256=" + sign(other_vote, previous)}),
        ("POST", "/webhook", REVIEW, {"X-Sphere-Signature": sign(REVIEW, secret).upper()}),
        ("POST", "/webhook", VOTE, {}),
        ("POST", "/webhook", VOTE, {"X-Sphere-Signature": sign(VOTE, "guess")}),
        (
            "POST",
            "/webhook",
            VOTE,
            {"X-Sphere-Signature": off_by_one_digit(sign(VOTE, secret)), "Authorization": "x"},
        ),
        ("POST", "/webhook", b"not json", {"X-Sphere-Signature": sign(b"not json", secret)}),
        (
            "POST",
            "/webhook",
            b'{"event":"VOTE_ADD"}',
            {"X-Sphere-Signature": sign(b'{"event":"VOTE_ADD"}', secret)},
        ),
        ("POST", "/webhook", b"{" + b" " * 4096 + b"}", {"X-Sphere-Signature": sign(b"{}", secret)}),
        ("GET", "/webhook", b"", {}),
        ("GET", "/nowhere", b"", {}),
        ("GET", "/healthz", b"", {}),
        ("GET", "/readyz", b"", {}),
        ("GET", "/openapi.json", b"", {}),
        ("GET", "/docs", b"", {}),
        ("GET", "/metrics", b"", {}),
    ]
    return [
        http.request(method, path, content=body, headers=headers) for method, path, body, headers in requests
    ]


def redis_contents(client: redis.Redis) -> str:
    """Everything the relay wrote to Redis, as text."""
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        value: object
        if kind == "stream":
            value = client.xrange(key)
        elif kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = client.smembers(key)
        else:
            value = kind
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


def wait_for(condition: object, what: str, within: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def run_cli(env: dict[str, str], commands: list[list[str]]) -> dict[str, str]:
    """Run ``relay <command>`` for each command, all at once; what each printed, with its exit code."""
    running = {
        " ".join(command): subprocess.Popen(
            [str(BIN / "relay"), *command],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    }
    output = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=60)
        output[name] = f"$ relay {name} -> {process.returncode}\n{stdout}\n{stderr}"
    return output


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_secret_never_leaves_the_relay(
    redis_url: str, store: redis.Redis, tmp_path: Path, log_format: str
) -> None:
    secret = f"canary-{secrets.token_hex(12)}"
    previous = f"canary-old-{secrets.token_hex(12)}"
    env = environment(redis_url, secret, previous, log_format)
    captured: dict[str, str] = {}

    edge = EdgeProcess(env, tmp_path / "edge.log", *PRODUCTION_FLAGS)
    worker = WorkerProcess(
        tmp_path,
        "worker",
        {k.removeprefix("RELAY_").lower(): v for k, v in env.items() if k.startswith("RELAY_")},
    )
    try:
        worker.start()
        edge.wait_ready()
        worker.wait_reading(store)
        with httpx.Client(base_url=edge.url, timeout=10) as http:
            responses = exercise(http, secret, previous)
            statuses = [r.status_code for r in responses]
            assert statuses == EXPECTED_STATUSES
            captured["answers"] = "\n".join(f"{r.status_code} {r.headers} {r.text}" for r in responses)
            # The worker runs both handled events; the refused votes become dead letters.
            wait_for(lambda: store.xlen(DEAD_STREAM) >= 2, "two dead letters")
            wait_for(lambda: "review 77 accepted" in worker.log(), "the review's handler")
            wait_for(lambda: store.xlen(REJECTED_STREAM) >= 6, "the refusals' records")
            captured["metrics"] = http.get("/metrics").text
        send = ["send", "vote", "--url", f"{edge.url}/webhook"]
        captured |= run_cli(env, [["stats"], ["rejected"], ["dlq", "ls"], send])
    finally:
        edge.stop()
        worker.terminate()
        worker.wait_exit()
    captured["edge log"] = edge.log()
    captured["worker log"] = worker.log()
    captured["redis"] = redis_contents(store)

    # Positive controls: the capture holds what a leak would sit next to.
    assert "webhook" in captured["edge log"] and "invalid_signature" in captured["edge log"]
    assert "edge ready" in captured["edge log"]
    assert "refusing the vote of user 258317078560243712" in captured["redis"] + captured["worker log"]
    assert "relay_webhook_requests_total" in captured["metrics"]
    assert store.xlen(EVENTS_STREAM) >= 3
    assert "-> 0" in captured["send vote --url " + f"{edge.url}/webhook"], captured
    if log_format == "json":
        lines = [line for line in captured["edge log"].splitlines() if line.startswith("{")]
        assert lines and all(json.loads(line) for line in lines)
    for where, text in captured.items():
        for value in (secret, previous):
            assert_nowhere(value, where, text)


def test_a_refused_start_names_the_setting_but_never_its_value(tmp_path: Path) -> None:
    secret = f"canary-{secrets.token_hex(12)}"
    done = run_to_exit(
        tmp_path,
        {
            "RELAY_SECRET": secret,
            "RELAY_PREVIOUS_SECRETS": f"{secret}x, ",  # fine
            "RELAY_MAX_BODY_BYTES": "-1",
            "RELAY_ALLOWED_SOURCES": "10.0.0.1/8",
            "RELAY_REDIS_URL": f"redis://:{secret}@127.0.0.1:1/0",
        },
    )

    assert done.returncode != 0
    assert "RELAY_MAX_BODY_BYTES" in done.stderr and "RELAY_ALLOWED_SOURCES" in done.stderr
    assert_nowhere(secret, "the start-up error", done.stdout + done.stderr)


def test_signatures_are_compared_in_constant_time() -> None:
    # Timing cannot be asserted reliably in a test; what can be checked is how the module compares:
    # through hmac.compare_digest, and never with == or != on a digest or the claimed signature.
    tree = ast.parse(inspect.getsource(signature))
    calls = [ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    comparisons = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)
        and any(word in ast.unparse(node) for word in ("digest", "claimed", "header", "signature"))
    ]

    assert "hmac.compare_digest" in calls
    assert comparisons == []
