"""examples/forward_receiver.py (FastAPI) and examples/forward_receiver.js (node, no packages) as real
processes: each accepts what the relay signs, refuses a bad or stale signature, and handles each
``webhook-id`` once."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from relay.core.events import parse
from tests.support.processes import stop
from tests.support.receivers import receiver_command
from tests.support.redis_server import free_port
from tests.support.worker_process import ROOT
from tests.worker.forward.signing import FORWARD_SECRET
from tests.worker.helpers import review_body, vote_body
from worker.forward import message


class Receiver:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def lines(self) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        return httpx.post(self.url, content=body, headers=headers, timeout=10).status_code


@pytest.fixture(params=["python", "javascript"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    command = receiver_command(request.param)
    port = free_port()
    log = tmp_path / "receiver.log"
    env = {**os.environ, "RELAY_FORWARD_SECRET": FORWARD_SECRET, "PORT": str(port)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}/relay"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the receiver did not start:\n{log.read_text()}"
            time.sleep(0.05)
    try:
        yield Receiver(url, log)
    finally:
        stop(process)


def signed(raw: bytes, webhook_id: str, at: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    event = parse(raw)
    data = message.body(stored_type=event.event, entry_id="1-0", received_ms=1, event=event, payload=raw)
    return data, message.signed_headers(Webhook(FORWARD_SECRET), webhook_id, data, at)


def test_a_signed_event_is_handled_once_however_often_it_comes(receiver: Receiver) -> None:
    data, headers = signed(vote_body(), "msg_1-0_aaaaaa")
    assert receiver.post(data, headers) == 204
    assert receiver.post(data, headers) == 204  # a retry or a replay: same id
    other, other_headers = signed(review_body(), "msg_2-0_aaaaaa")
    assert receiver.post(other, other_headers) == 204
    assert receiver.lines() == [
        {"received": "msg_1-0_aaaaaa", "type": "VOTE_ADD", "event_id": "1-0"},
        {"duplicate": "msg_1-0_aaaaaa"},
        {"received": "msg_2-0_aaaaaa", "type": "REVIEW_ADD", "event_id": "1-0"},
    ]


def test_a_bad_or_stale_signature_is_refused(receiver: Receiver) -> None:
    data, headers = signed(vote_body(), "msg_3-0_aaaaaa")
    assert receiver.post(data + b" ", headers) == 401
    assert receiver.post(data, {**headers, "webhook-id": "msg_4-0_aaaaaa"}) == 401
    stale, stale_headers = signed(vote_body(), "msg_5-0_aaaaaa", datetime.now(UTC) - timedelta(minutes=10))
    assert receiver.post(stale, stale_headers) == 401
    assert receiver.post(data, {"content-type": "application/json"}) == 401
    assert receiver.lines() == []
