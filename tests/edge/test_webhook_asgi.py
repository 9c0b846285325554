"""The webhook endpoint driven directly through ASGI, for what a well-behaved HTTP client cannot do:
a server that fails mid-request, an edge that was never started, a request cut by a stop, and the
dispatch ahead of FastAPI.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from relay.app import create_app
from relay.core.settings import Settings
from relay.edge.webhook import WebhookEndpoint
from tests.conftest import SECRET
from tests.security.asgi import http_scope

pytestmark = pytest.mark.anyio

Message = MutableMapping[str, Any]
BODY = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"2"}'


def scope(method: str = "POST", path: str = "/webhook", body: bytes = BODY) -> Scope:
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = [(b"content-length", str(len(body)).encode()), (b"x-sphere-signature", signature.encode())]
    return http_scope(method, path, headers, client=("127.0.0.1", 50000))


async def call(app: ASGIApp, request: Scope, receive: Receive) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(request, receive, send)
    return sent


def body_once(body: bytes = BODY) -> Callable[[], Awaitable[Message]]:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def test_an_unexpected_failure_is_503_internal_error_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_server_receive() -> Message:
        raise RuntimeError("the server broke")

    sent = await call(WebhookEndpoint(settings), scope(), broken_server_receive)

    start, body = sent
    assert start["status"] == 503
    assert (b"retry-after", b"5") in start["headers"]
    assert body["body"] == b'{"error":"internal_error"}'
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


async def test_an_edge_whose_lifespan_did_not_run_stores_nothing_and_says_503(settings: Settings) -> None:
    sent = await call(WebhookEndpoint(settings), scope(), body_once())

    assert sent[0]["status"] == 503
    assert sent[1]["body"] == b'{"error":"redis_unavailable"}'


async def test_a_client_gone_before_its_body_gets_no_answer(settings: Settings) -> None:
    async def disconnected() -> Message:
        return {"type": "http.disconnect"}

    assert await call(WebhookEndpoint(settings), scope(), disconnected) == []


async def test_post_webhook_bypasses_fastapi_and_the_rest_goes_through_it(settings: Settings) -> None:
    app = create_app(settings)
    seen: list[str] = []

    def spy(app: ASGIApp) -> ASGIApp:  # Starlette before 0.39 passes it as app=
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(f"{scope.get('method')} {scope.get('path')}")
            await app(scope, receive, send)

        return middleware

    app.api.add_middleware(spy)

    posted = await call(app, scope(), body_once())
    probed = await call(app, scope("GET", "/healthz", b""), body_once(b""))

    assert posted[0]["status"] == 503  # the endpoint answered (no lifespan ran, so no Redis)
    assert probed[0]["status"] == 200
    assert seen == ["GET /healthz"]


async def test_a_request_cut_by_a_stop_is_503_shutting_down(settings: Settings) -> None:
    # uvicorn cancels what still runs when a stop's grace (--timeout-graceful-shutdown) ends.
    sent: list[Message] = []
    arrived = anyio.Event()

    async def stalled_body() -> Message:
        arrived.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(WebhookEndpoint(settings), scope(), stalled_body, send)
        await arrived.wait()
        tasks.cancel_scope.cancel()

    start, body = sent
    assert start["status"] == 503 and (b"retry-after", b"5") in start["headers"]
    assert body["body"] == b'{"error":"shutting_down"}'
