"""Redis failing under a running edge: killed, restarted, stalled. The edge itself is never restarted."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest
import redis

from relay.core.keys import EVENTS_STREAM
from tests.conftest import SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow


def vote(user_id: int) -> bytes:
    return b'{"event":"VOTE_ADD","guild_id":"1","user_id":"%d"}' % user_id


def post(http: httpx.Client, body: bytes) -> httpx.Response:
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return http.post("/webhook", content=body, headers={"X-Sphere-Signature": signature})


def stored_bodies(url: str) -> list[bytes]:
    with redis.Redis.from_url(url) as client:
        return [fields[b"body"] for _, fields in client.xrange(EVENTS_STREAM)]


def test_redis_killed_then_restarted_without_restarting_the_edge(own_redis: RedisServer) -> None:
    with running_edge(make_settings(own_redis.url)) as url, httpx.Client(base_url=url, timeout=10) as http:
        assert post(http, vote(1)).status_code == 202

        own_redis.kill()
        down = post(http, vote(2))
        assert down.status_code == 503
        assert down.headers["retry-after"]
        assert http.get("/readyz").status_code == 503
        assert http.get("/healthz").status_code == 200

        own_redis.start()  # same port, same append-only file, empty script cache
        assert http.get("/readyz").status_code == 200
        assert post(http, vote(3)).status_code == 202
        assert post(http, vote(2)).status_code == 202  # Sphere's redelivery of the refused one

    assert stored_bodies(own_redis.url) == [vote(1), vote(3), vote(2)]


def test_a_stalled_redis_gives_503_within_the_timeout_then_recovers(own_redis: RedisServer) -> None:
    settings = make_settings(own_redis.url, redis_timeout=0.5)
    # The client's own timeout is far above the edge's: a 503 can only come from the edge's bound.
    with running_edge(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert post(http, vote(1)).status_code == 202

        own_redis.pause()  # SIGSTOP: connections stay open, nothing answers
        try:
            stalled = post(http, vote(2))
            assert stalled.status_code == 503
            assert stalled.json() == {"error": "redis_unavailable"}
            assert http.get("/readyz").status_code == 503
        finally:
            own_redis.resume()

        assert post(http, vote(3)).status_code == 202
        # Redis may have run the stalled write after it woke up; the redelivery must then be
        # answered as a duplicate, never stored twice.
        assert post(http, vote(2)).status_code in (200, 202)

    bodies = stored_bodies(own_redis.url)
    assert sorted(bodies) == sorted([vote(1), vote(2), vote(3)])
