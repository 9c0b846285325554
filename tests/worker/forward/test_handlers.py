"""A forwarding handler called as a test calls any handler, against a real HTTP receiver: what each
answer (or no answer) raises, and that its registry has one handler per destination."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from arq.worker import Retry

from relay.core.events import parse
from relay.core.settings import Settings
from tests.conftest import make_settings
from tests.support.forward_sink import Answer, Sink, forward_sink
from tests.support.redis_server import free_port
from tests.worker.forward.signing import FORWARD_SECRET, expected_webhook_id, signature_ok
from tests.worker.helpers import vote_body
from worker.checks import TasksError
from worker.errors import Permanent
from worker.forward.destination import Destination
from worker.forward.handlers import DeliveryFailed, Forwarder, Forwarding, delivery_handlers, with_forwarding
from worker.registry import Registry

pytestmark = pytest.mark.anyio


@pytest.fixture
def sink() -> Iterator[Sink]:
    with forward_sink() as running:
        yield running


def forward_settings(url: str, **overrides: object) -> Settings:
    return make_settings(
        "redis://127.0.0.1:1/0", forward_url=[url], forward_secret=FORWARD_SECRET, **overrides
    )


@pytest.fixture
async def forwarding(sink: Sink) -> AsyncIterator[Forwarding]:
    shared = Forwarding(forward_settings(sink.url, forward_timeout=1.0))
    await shared.start()
    yield shared
    await shared.close()


def ctx_for(raw: bytes) -> dict[str, Any]:
    return {
        "event_id": "1718000000000-0",
        "event_type": "VOTE_ADD",
        "received_ms": 1718000000000,
        "body": raw,
    }


async def deliver(forwarding: Forwarding, url: str) -> None:
    raw = vote_body()
    await Forwarder(Destination(url), forwarding, FORWARD_SECRET)(ctx_for(raw), parse(raw))


async def test_a_2xx_is_delivered_signed(forwarding: Forwarding, sink: Sink) -> None:
    await deliver(forwarding, sink.url)
    [request] = sink.requests()
    assert request.webhook_id == expected_webhook_id("1718000000000-0", sink.url)
    assert signature_ok(FORWARD_SECRET, request.headers, request.body)
    assert request.headers["content-type"] == "application/json"


async def test_deliveries_share_one_kept_alive_connection(forwarding: Forwarding, sink: Sink) -> None:
    sink.default = Answer(200, body=b"thanks")  # a body: read, or the connection could not be reused
    for _ in range(5):
        await deliver(forwarding, sink.url)
    assert len({request.peer for request in sink.requests()}) == 1


async def test_a_5xx_fails_the_attempt_for_the_backoff(forwarding: Forwarding, sink: Sink) -> None:
    sink.default = Answer(502, body=b"bad gateway")
    with pytest.raises(DeliveryFailed, match="HTTP 502: bad gateway"):
        await deliver(forwarding, sink.url)


async def test_503_with_retry_after_asks_for_that_delay(forwarding: Forwarding, sink: Sink) -> None:
    sink.default = Answer(503, {"Retry-After": "42"})
    with pytest.raises(Retry) as raised:
        await deliver(forwarding, sink.url)
    assert raised.value.defer_score == 42_000


async def test_a_4xx_is_permanent(forwarding: Forwarding, sink: Sink) -> None:
    sink.default = Answer(401, body=b"bad signature")
    with pytest.raises(Permanent, match="HTTP 401: bad signature"):
        await deliver(forwarding, sink.url)


async def test_no_listener_fails_the_attempt(forwarding: Forwarding) -> None:
    with pytest.raises(DeliveryFailed, match="ConnectError"):
        await deliver(forwarding, f"http://127.0.0.1:{free_port()}/relay")


async def test_an_answer_slower_than_the_timeout_fails_the_attempt(
    forwarding: Forwarding, sink: Sink
) -> None:
    sink.default = Answer(204, stall=3)
    with pytest.raises(DeliveryFailed, match="no answer within 1s"):
        await deliver(forwarding, sink.url)


async def test_a_closed_client_fails_the_attempt_instead_of_sending(sink: Sink) -> None:
    idle = Forwarding(forward_settings(sink.url))
    with pytest.raises(DeliveryFailed, match="not open"):
        await deliver(idle, sink.url)
    assert sink.requests() == []


def test_each_destination_is_a_wildcard_handler_with_its_own_limit() -> None:
    urls = ["http://a.example/relay", "http://b.example/relay"]
    settings = make_settings(
        "redis://127.0.0.1:1/0", forward_url=urls, forward_secret=FORWARD_SECRET, forward_concurrency=3
    )
    registry = with_forwarding(Registry(), delivery_handlers(settings, Forwarding(settings)))
    assert [h.name for h in registry.for_type("VOTE_ADD")] == [Destination(u).name for u in urls]
    assert [h.name for h in registry.for_type("SOMETHING_NEW")] == [Destination(u).name for u in urls]
    assert {h.concurrency for h in registry} == {3}
    assert all(h.timeout > settings.forward_timeout for h in registry)


def test_a_handler_with_a_destinations_name_is_refused_in_one_line() -> None:
    url = "http://a.example/relay"
    mine = Registry()

    @mine.on("*", name=Destination(url).name)
    async def clash(ctx: object, event: object) -> None:
        pass

    settings = make_settings("redis://127.0.0.1:1/0", forward_url=[url], forward_secret=FORWARD_SECRET)
    with pytest.raises(TasksError) as refused:
        with_forwarding(mine, delivery_handlers(settings, Forwarding(settings)))
    [line] = refused.value.lines
    assert "rename it" in line and Destination(url).name in line


async def test_httpx_logs_no_line_with_a_destinations_url(
    forwarding: Forwarding, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        await deliver(forwarding, sink.url)
        async with httpx.AsyncClient() as other:  # a handler's own requests keep their lines
            await other.post(sink.url.replace("/hook", "/other"), content=b"{}")
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 1 and "/other" in lines[0]
