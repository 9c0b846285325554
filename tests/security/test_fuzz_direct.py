"""Differential fuzzing of the direct path: over real HTTP, a request answered straight from the
edge's protocol (relay/edge/direct.py) gets exactly the answer the ASGI endpoint gives.

Two edges, one per Redis database so that each sees the same history: one under the edge's own
protocol (the usual request goes direct), one under uvicorn's plain httptools protocol (every
request through ASGI). Each generated request goes to both, whole, on a new connection; the two
answers must be equal byte for byte but for the ``date`` header and the entry ids. The framing
headers (Content-Length, Transfer-Encoding, Expect, Connection, Host) are the test's own, so that
every request is well framed; what else a hostile sender may send is drawn as in test_fuzz_webhook.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import event, given

from relay.core.settings import Settings
from tests.conftest import make_settings
from tests.security import strategies as hs
from tests.security.conftest import MAX_BODY
from tests.security.rawhttp import connect, read_response
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer

FRAMING = {b"content-length", b"transfer-encoding", b"expect", b"connection", b"host", b"upgrade"}


@pytest.fixture(scope="module")
def edges(shared_redis: RedisServer) -> Iterator[tuple[str, str]]:
    """``(direct, through ASGI)``, on databases 14 and 15 of one Redis, emptied first."""
    shared_redis.flush()
    base = shared_redis.url.rsplit("/", 1)[0]

    def settings(db: int) -> Settings:
        return make_settings(f"{base}/{db}", max_body_bytes=MAX_BODY, body_timeout=2.0)

    with running_edge(settings(14)) as direct, running_edge(settings(15), http="httptools") as asgi:
        yield direct, asgi
    shared_redis.flush()


def post(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    kept = [(name, value) for name, value in headers if name.lower() not in FRAMING]
    head = [b"POST /webhook HTTP/1.1", b"Host: edge", *(name + b": " + value for name, value in kept)]
    head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def answer(url: str, request: bytes) -> bytes:
    with connect(url, timeout=10) as sock:
        sock.sendall(request)
        head, body = read_response(sock)
    head = re.sub(rb"\r\ndate: [^\r]*", b"\r\ndate: *", head)
    return head + b"\r\n\r\n" + re.sub(rb'"id":"\d+-\d+"', b'"id":"*"', body)


def same_answer_both_ways(edges: tuple[str, str], request: bytes) -> bytes:
    direct, asgi = edges
    through_direct = answer(direct, request)
    assert through_direct == answer(asgi, request)
    status = through_direct.split(b" ", 2)[1].decode()
    event(f"status {status}")
    assert not status.startswith("5")  # Redis is up: never a 5xx either way
    return through_direct


@given(hs.forged_requests())
def test_a_forged_request_gets_the_same_refusal_directly_as_through_asgi(
    edges: tuple[str, str], forged: tuple[bytes, bytes | None, list[tuple[bytes, bytes]], list[bytes]]
) -> None:
    body, _, headers, _ = forged
    reply = same_answer_both_ways(edges, post(headers, body))
    assert reply.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 401 ", b"HTTP/1.1 413 ")), reply[:200]


@given(hs.signed_requests())
def test_a_signed_request_gets_the_same_answer_directly_as_through_asgi(
    edges: tuple[str, str], signed: tuple[bytes, list[tuple[bytes, bytes]], list[bytes]]
) -> None:
    body, headers, _ = signed
    same_answer_both_ways(edges, post(headers, body))
