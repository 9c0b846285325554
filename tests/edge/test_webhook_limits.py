"""Body limits over real HTTP: size by Content-Length and while reading chunks, and slow bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from relay.core.keys import EVENTS_STREAM
from tests.conftest import SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer

LIMIT = 1024


def signed(body: bytes) -> dict[str, str]:
    return {"X-Sphere-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


def vote_of_size(size: int) -> bytes:
    """A valid vote padded with JSON whitespace to exactly `size` bytes."""
    body = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"2"}'
    return body[:-1] + b" " * (size - len(body)) + b"}"


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    settings = make_settings(shared_redis.url, max_body_bytes=LIMIT, body_timeout=0.5)
    with running_edge(settings) as url:
        yield url


@pytest.fixture
def http(edge_url: str, client: redis.Redis) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge_url, timeout=10) as session:
        yield session


def chunks(body: bytes, size: int = 256) -> Iterator[bytes]:
    """A generator body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_body_exactly_at_the_limit_is_accepted(http: httpx.Client, client: redis.Redis) -> None:
    body = vote_of_size(LIMIT)
    response = http.post("/webhook", content=body, headers=signed(body))

    assert response.status_code == 202
    assert client.xlen(EVENTS_STREAM) == 1


def test_content_length_over_the_limit_is_413(http: httpx.Client, client: redis.Redis) -> None:
    body = vote_of_size(LIMIT + 1)
    response = http.post("/webhook", content=body, headers=signed(body))

    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert client.xlen(EVENTS_STREAM) == 0


def test_a_chunked_body_under_the_limit_is_read_whole(http: httpx.Client, client: redis.Redis) -> None:
    body = vote_of_size(LIMIT)
    request = http.build_request("POST", "/webhook", content=chunks(body), headers=signed(body))
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"

    response = http.send(request)

    assert response.status_code == 202
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(EVENTS_STREAM)  # type: ignore[assignment]
    assert [fields[b"body"] for _, fields in entries] == [body]


def test_a_chunked_body_over_the_limit_is_413(http: httpx.Client, client: redis.Redis) -> None:
    body = vote_of_size(3 * LIMIT)
    request = http.build_request("POST", "/webhook", content=chunks(body), headers=signed(body))
    assert "content-length" not in request.headers

    response = http.send(request)

    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert client.xlen(EVENTS_STREAM) == 0


def raw_request(edge_url: str, head: bytes, first_chunk: bytes) -> socket.socket:
    """Open a connection and send headers plus the start of a chunked body, then stop."""
    host, port = edge_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head + b"%x\r\n%s\r\n" % (len(first_chunk), first_chunk))
    return sock


def chunked_head(signature: str) -> bytes:
    return (
        b"POST /webhook HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nX-Sphere-Signature: " + signature.encode() + b"\r\n\r\n"
    )


def test_a_body_that_stops_arriving_is_cut_off_with_408(edge_url: str, client: redis.Redis) -> None:
    body = vote_of_size(200)
    sock = raw_request(edge_url, chunked_head(signed(body)["X-Sphere-Signature"]), body[:100])
    with sock:
        reply = b""
        while b"\r\n\r\n" not in reply:  # the edge answers on its own, bounded by body_timeout
            data = sock.recv(4096)
            if not data:
                break
            reply += data

    assert reply.startswith(b"HTTP/1.1 408 ")
    assert client.xlen(EVENTS_STREAM) == 0


def test_a_client_that_leaves_mid_body_stores_nothing(
    edge_url: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="relay.edge.webhook")
    body = vote_of_size(200)
    sock = raw_request(edge_url, chunked_head(signed(body)["X-Sphere-Signature"]), body[:100])
    sock.close()

    deadline = time.monotonic() + 5
    while not any(getattr(r, "outcome", None) == "client_gone" for r in caplog.records):
        assert time.monotonic() < deadline, "the edge never noticed the client leaving"
        time.sleep(0.01)
    assert client.xlen(EVENTS_STREAM) == 0


def test_413_detail_names_the_limit_only(http: httpx.Client) -> None:
    body = vote_of_size(LIMIT + 1)
    response = http.post("/webhook", content=body, headers=signed(body))

    assert json.loads(response.content) == {
        "error": "body_too_large",
        "detail": f"body is over {LIMIT} bytes",
    }
