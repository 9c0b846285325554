"""``RELAY_ALLOWED_SOURCES`` end to end: the app refuses outsiders with 403 before reading a body.

In-process with chosen peer addresses (a real socket only ever shows 127.0.0.1), then once over
real HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from relay.app import FORBIDDEN_SOURCE, AllowListedEdgeApp, EdgeApp, create_app
from relay.core.keys import EVENTS_STREAM
from relay.edge.rejections import recent
from tests.conftest import SECRET, make_settings
from tests.security.asgi import Reply, lifespan, request
from tests.support.edge_server import running_edge

pytestmark = pytest.mark.anyio

VOTE = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"2"}'


def signed(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"x-sphere-signature", hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().encode())]


@pytest.fixture
async def edge(redis_url: str) -> AsyncIterator[EdgeApp]:
    settings = make_settings(
        redis_url, allowed_sources="203.0.113.0/24,2001:db8::/32", trusted_proxies="10.0.0.0/8,fd00::/8"
    )
    app = create_app(settings)
    async with lifespan(app):
        yield app


async def post(edge: EdgeApp, peer: str, *forwarded: str, body: bytes = VOTE) -> Reply:
    headers = [*signed(body), *((b"x-forwarded-for", hop.encode()) for hop in forwarded)]
    return await request(edge, headers, [body], client=(peer, 40000))


def assert_forbidden(reply: Reply, seen: str) -> None:
    assert reply.status == 403, reply
    assert json.loads(reply.body) == {
        "error": FORBIDDEN_SOURCE,
        "detail": f"requests from {seen} may not post webhooks",
    }


def test_the_allow_list_is_off_by_default(redis_url: str) -> None:
    assert type(create_app(make_settings(redis_url))) is EdgeApp


async def test_an_allowed_source_is_served(edge: EdgeApp, redis: aioredis.Redis) -> None:
    assert isinstance(edge, AllowListedEdgeApp)

    reply = await post(edge, "203.0.113.9")

    assert reply.status == 202, reply
    assert await redis.xlen(EVENTS_STREAM) == 1


async def test_another_source_is_refused_403_and_nothing_is_stored(
    edge: EdgeApp, redis: aioredis.Redis
) -> None:
    reply = await post(edge, "198.51.100.7")

    assert_forbidden(reply, "198.51.100.7")
    assert await redis.xlen(EVENTS_STREAM) == 0


async def test_the_refusal_is_recorded_like_the_others(edge: EdgeApp, redis: aioredis.Redis) -> None:
    await post(edge, "198.51.100.7")

    deadline = time.monotonic() + 5
    while not (records := await recent(redis, 10)):
        assert time.monotonic() < deadline, "the refusal was never recorded"
        await asyncio.sleep(0.01)
    assert records[0].status == 403
    assert records[0].reason == FORBIDDEN_SOURCE
    assert edge.metrics.requests(FORBIDDEN_SOURCE) == 1


async def test_x_forwarded_for_from_a_trusted_proxy_is_honoured(edge: EdgeApp) -> None:
    assert (await post(edge, "10.1.2.3", "203.0.113.9")).status == 202
    assert_forbidden(await post(edge, "10.1.2.3", "198.51.100.7"), "198.51.100.7")


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(edge: EdgeApp) -> None:
    assert_forbidden(await post(edge, "198.51.100.7", "203.0.113.9"), "198.51.100.7")


async def test_a_spoofed_hop_left_of_the_real_client_does_not_help(edge: EdgeApp) -> None:
    # The client wrote an allowed address itself; the proxies appended what they really saw.
    reply = await post(edge, "10.0.0.1", "203.0.113.9, 198.51.100.7, 10.0.0.2")

    assert_forbidden(reply, "198.51.100.7")


async def test_an_unreadable_forwarded_address_is_refused(edge: EdgeApp) -> None:
    assert_forbidden(await post(edge, "10.0.0.1", "unknown"), "an unknown address")


async def test_ipv6_sources_and_proxies(edge: EdgeApp) -> None:
    assert (await post(edge, "2001:db8::5", body=VOTE.replace(b'"2"', b'"3"'))).status == 202
    assert (await post(edge, "fd00::1", "2001:db8:1::9", body=VOTE.replace(b'"2"', b'"4"'))).status == 202
    assert_forbidden(await post(edge, "2001:db9::5"), "2001:db9::5")
    assert_forbidden(await post(edge, "fd00::1", "2001:db9::5"), "2001:db9::5")


async def test_probes_are_not_behind_the_allow_list(edge: EdgeApp) -> None:
    reply = await request(edge, [], method="GET", path="/healthz", client=("198.51.100.7", 40000))

    assert reply.status == 200


async def test_over_real_http_loopback_is_refused_unless_allowed(redis_url: str) -> None:
    for allowed, status in (("10.0.0.0/8", 403), ("127.0.0.0/8,::1", 202)):
        with running_edge(make_settings(redis_url, allowed_sources=allowed)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                response = await http.post(
                    "/webhook", content=VOTE, headers={k.decode(): v.decode() for k, v in signed(VOTE)}
                )
        assert response.status_code == status, response.text


async def test_over_real_http_a_loopback_peer_cannot_claim_an_allowed_address(redis_url: str) -> None:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default (--proxy-headers); the edge turns
    # that off so that RELAY_TRUSTED_PROXIES alone decides whom to believe.
    settings = make_settings(redis_url, allowed_sources="203.0.113.0/24")
    headers = {k.decode(): v.decode() for k, v in signed(VOTE)} | {"X-Forwarded-For": "203.0.113.9"}
    with running_edge(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            response = await http.post("/webhook", content=VOTE, headers=headers)

    assert response.status_code == 403, response.text
    assert response.json()["detail"] == "requests from 127.0.0.1 may not post webhooks"
