"""Slow and idle clients against a real uvicorn running the edge's protocol (`relay.edge.protocol`).

- a body drip-fed for longer than ``RELAY_BODY_TIMEOUT`` is cut off with 408, although bytes keep
  arriving (the stalled body is tests/edge/test_webhook_limits.py's);
- a request head that does not complete within `HEAD_TIMEOUT` (nothing sent, or headers dripped)
  gets its connection closed, and a head over `MAX_HEAD_BYTES` gets 431;
- 200 idle connections do not keep a valid request from its 202, and connections held idle past
  the concurrency limit are shed, so that service resumes without the attacker letting go.

Every wait is bounded by a client-side deadline; nothing asserts on how long anything took.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from relay.core.keys import EVENTS_STREAM
from relay.edge import protocol
from tests.conftest import make_settings
from tests.security.rawhttp import (
    closed_by_server,
    connect,
    drip,
    post_request,
    read_answer,
    read_response,
    signature,
)
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer

VOTE = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"2"}'
PADDED = VOTE[:-1] + b" " * 250 + b"}"  # long enough to drip past the timeout
LIMIT_CONCURRENCY = 1000  # as in docker-compose.yml


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
def quick_heads(monkeypatch: pytest.MonkeyPatch) -> float:
    """A short head deadline, so that the tests of it stay short. Returns it."""
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT", 0.5)
    return 0.5


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    settings = make_settings(shared_redis.url, body_timeout=0.5)
    with running_edge(settings, limit_concurrency=LIMIT_CONCURRENCY) as url:
        yield url


def signed_vote(user: int) -> tuple[bytes, dict[str, str]]:
    body = VOTE.replace(b'"2"', f'"{user}"'.encode())
    return body, {"X-Sphere-Signature": signature(body)}


# -- bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_drip_fed_past_the_timeout_is_cut_off_with_408(
    edge_url: str, store: redis.Redis, framing: str
) -> None:
    sig = signature(PADDED)
    if framing == "content-length":
        request = post_request(PADDED, sig)
        head, body = request.split(b"\r\n\r\n", 1)
        head += b"\r\n\r\n"
    else:
        head = (
            b"POST /webhook HTTP/1.1\r\nHost: edge\r\nTransfer-Encoding: chunked\r\n"
            b"X-Sphere-Signature: " + sig.encode() + b"\r\n\r\n"
        )
        body = b"".join(b"1\r\n" + bytes([byte]) + b"\r\n" for byte in PADDED) + b"0\r\n\r\n"
    with connect(edge_url) as sock:
        sock.sendall(head)
        # One byte every 20 ms: bytes never stop coming, the whole body would take seconds.
        answer = drip(sock, body, every=0.02, until=time.monotonic() + 10)

    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"error":"body_timeout"' in answer or answer.endswith(b"\r\n\r\n")
    assert store.xlen(EVENTS_STREAM) == 0


def test_a_body_answered_unread_and_then_dripped_gets_the_connection_closed(
    quick_heads: float, edge_url: str
) -> None:
    with connect(edge_url) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: edge\r\nContent-Length: 1000\r\n\r\n")
        head, _ = read_response(sock)
        assert head.startswith(b"HTTP/1.1 405 ")
        answer = drip(sock, b"x" * 1000, every=0.05, until=time.monotonic() + 10 * quick_heads)

    assert answer == b""  # closed, although the rest of the body was still coming


# -- heads ---------------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(quick_heads: float, edge_url: str) -> None:
    with connect(edge_url) as sock:
        assert closed_by_server(sock, within=10 * quick_heads + 5)


def test_headers_dripped_past_the_deadline_get_the_connection_closed(
    quick_heads: float, edge_url: str
) -> None:
    head = post_request(VOTE, signature(VOTE)).split(b"\r\n\r\n")[0]
    with connect(edge_url) as sock:
        answer = drip(sock, head, every=0.05, until=time.monotonic() + 10 * quick_heads)

    assert answer == b""  # closed without an answer: there is no request to answer yet


def test_the_next_head_on_a_kept_alive_connection_has_a_deadline_too(
    quick_heads: float, edge_url: str, store: redis.Redis
) -> None:
    with connect(edge_url) as sock:
        sock.sendall(post_request(VOTE, signature(VOTE)))
        assert read_response(sock)[0].startswith(b"HTTP/1.1 202 ")
        answer = drip(
            sock,
            b"POST /webhook HTTP/1.1\r\nHost: edge\r\n" * 10,
            every=0.05,
            until=time.monotonic() + 10 * quick_heads,
        )

    assert answer == b""


def test_a_head_over_the_limit_is_431(edge_url: str, store: redis.Redis) -> None:
    padding = b"X-Padding: " + b"a" * protocol.MAX_HEAD_BYTES + b"\r\n"
    with connect(edge_url) as sock:
        sock.sendall(post_request(VOTE, signature(VOTE), extra=padding))
        answer = read_answer(sock) + sock.recv(100)

    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert answer.endswith(b'{"error":"header_too_large"}')
    assert store.xlen(EVENTS_STREAM) == 0


def test_a_large_head_within_the_limit_is_served(edge_url: str, store: redis.Redis) -> None:
    padding = b"X-Padding: " + b"a" * (protocol.MAX_HEAD_BYTES // 2) + b"\r\n"
    with connect(edge_url) as sock:
        sock.sendall(post_request(VOTE, signature(VOTE), extra=padding))
        assert read_answer(sock).startswith(b"HTTP/1.1 202 ")


# -- idle connections ----------------------------------------------------------------------------


def test_200_idle_connections_do_not_starve_a_valid_request(edge_url: str, store: redis.Redis) -> None:
    idle = [connect(edge_url) for _ in range(200)]
    half_heads = [connect(edge_url) for _ in range(50)]
    try:
        for sock in half_heads:
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: edge\r\nX-Sphere-Sig")
        body, headers = signed_vote(7)
        response = httpx.post(f"{edge_url}/webhook", content=body, headers=headers, timeout=10)
    finally:
        for sock in idle + half_heads:
            sock.close()

    assert response.status_code == 202
    assert store.xlen(EVENTS_STREAM) == 1


def test_connections_held_past_the_concurrency_limit_are_shed_and_service_resumes(
    quick_heads: float, redis_url: str, store: redis.Redis
) -> None:
    limit = 20
    with running_edge(make_settings(redis_url), limit_concurrency=limit) as url:
        held = [connect(url) for _ in range(limit + 5)]
        try:
            body, headers = signed_vote(8)
            with httpx.Client(base_url=url, timeout=10) as http:
                # uvicorn's own overload answer while the connections are held...
                assert http.post("/webhook", content=body, headers=headers).status_code == 503
                # ...until the head deadline closes them, although their client never lets go.
                deadline = time.monotonic() + 10 * quick_heads + 5
                while (status := http.post("/webhook", content=body, headers=headers).status_code) == 503:
                    assert time.monotonic() < deadline, "the held connections were never shed"
                    time.sleep(0.05)
        finally:
            for sock in held:
                sock.close()

    assert status == 202
    assert store.xlen(EVENTS_STREAM) == 1
