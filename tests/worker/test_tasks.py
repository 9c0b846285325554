"""The shipped example tasks: thanking voters on Discord (against a local webhook server) and logging reviews."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from relay.core.events import ReviewAdd, VoteAdd, parse
from tests.worker.helpers import review_body, vote_body
from worker import Permanent, tasks
from worker.registry import default_registry


class FakeDiscord:
    """A loopback HTTP server standing in for a Discord webhook URL."""

    def __init__(self) -> None:
        self.status = 204
        self.received: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                fake.received.append(json.loads(self.rfile.read(length)))
                self.send_response(fake.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/webhooks/1/token"


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    fake = FakeDiscord()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def a_vote() -> VoteAdd:
    event = parse(vote_body())
    assert isinstance(event, VoteAdd)
    return event


def test_the_examples_are_registered_for_their_events() -> None:
    assert "thank_voter" in [h.name for h in default_registry.for_type("VOTE_ADD")]
    assert "log_review" in [h.name for h in default_registry.for_type("REVIEW_ADD")]


def test_a_voter_is_thanked_and_only_they_are_pinged(discord: FakeDiscord) -> None:
    vote = a_vote()
    tasks.thank_voter({"discord_webhook_url": discord.url}, vote)  # type: ignore[typeddict-item]

    [message] = discord.received
    assert f"<@{vote.user_id}>" in message["content"]
    assert message["allowed_mentions"] == {"users": [vote.user_id]}


def test_without_a_webhook_url_nothing_is_posted(discord: FakeDiscord) -> None:
    tasks.thank_voter({}, a_vote())  # type: ignore[typeddict-item]
    assert discord.received == []


@pytest.mark.anyio
async def test_startup_reads_the_webhook_url(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx: dict[str, Any] = {}
    monkeypatch.delenv(tasks.DISCORD_WEBHOOK_URL, raising=False)
    await tasks.startup(ctx)
    assert "discord_webhook_url" not in ctx

    monkeypatch.setenv(tasks.DISCORD_WEBHOOK_URL, " https://discord.example/api/webhooks/1/t ")
    await tasks.startup(ctx)
    assert ctx["discord_webhook_url"] == "https://discord.example/api/webhooks/1/t"


def test_a_refused_webhook_is_permanent(discord: FakeDiscord) -> None:
    discord.status = 404  # the webhook was deleted: retrying cannot help
    with pytest.raises(Permanent, match="HTTP 404"):
        tasks.thank_voter({"discord_webhook_url": discord.url}, a_vote())  # type: ignore[typeddict-item]


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_and_server_errors_are_retried(discord: FakeDiscord, status: int) -> None:
    discord.status = status
    with pytest.raises(urllib.error.HTTPError) as raised:
        tasks.thank_voter({"discord_webhook_url": discord.url}, a_vote())  # type: ignore[typeddict-item]
    assert not isinstance(raised.value, Permanent) and raised.value.code == status


@pytest.mark.anyio
async def test_a_review_is_logged_without_its_text(caplog: pytest.LogCaptureFixture) -> None:
    review = parse(review_body(stars=4))
    assert isinstance(review, ReviewAdd)
    with caplog.at_level(logging.INFO, logger="worker.tasks"):
        await tasks.log_review({"event_id": "1-0"}, review)  # type: ignore[typeddict-item]

    [line] = caplog.messages
    assert "4-star review" in line and "Great server" in line
    assert "Friendly people" not in line
