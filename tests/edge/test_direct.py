"""``POST /webhook`` answered straight from the HTTP protocol (relay/edge/direct.py): the same answers as
the ASGI endpoint, byte for byte, and everything unusual still handed to it.

Each comparison sends the same raw request to two edges on the same Redis: one under the edge's
protocol (direct), one under uvicorn's plain httptools protocol (every request through ASGI).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from uvicorn.protocols.http import httptools_impl

from relay.core.keys import EVENTS_STREAM, F_BODY
from relay.edge import protocol
from relay.edge.direct import unsupported_reason
from relay.edge.webhook import WebhookEndpoint
from tests.conftest import make_settings
from tests.edge.test_protocol import read_responses
from tests.security.rawhttp import connect, post_request, read_response, signature
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer, free_port

VOTE = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"%d"}'
MAX_BODY = 1024


@pytest.fixture(scope="module")
def edges(shared_redis: RedisServer) -> Iterator[tuple[str, str]]:
    """``(direct, through ASGI)`` edges on one Redis."""
    settings = make_settings(shared_redis.url, max_body_bytes=MAX_BODY)
    with running_edge(settings) as direct, running_edge(settings, http="httptools") as asgi:
        yield direct, asgi


@pytest.fixture
def asgi_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests that reached the ASGI endpoint (the edges run in this process)."""
    calls: list[str] = []
    original = WebhookEndpoint.__call__

    async def counted(self: WebhookEndpoint, scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(WebhookEndpoint, "__call__", counted)
    return calls


def exchange(url: str, request: bytes) -> tuple[bytes, bytes]:
    """Send `request` on a new connection; its answer, with the ``date`` header and ids masked."""
    with connect(url, timeout=10) as sock:
        sock.sendall(request)
        head, body = read_response(sock)
    head = re.sub(rb"\r\ndate: [^\r]*", b"\r\ndate: *", head)
    return head, re.sub(rb'"id":"\d+-\d+"', b'"id":"*"', body)


def signed(body: bytes, *, extra: bytes = b"") -> bytes:
    return post_request(body, signature(body), extra=extra)


CASES = {
    "queued": lambda n: signed(VOTE % n),
    "bad signature": lambda n: post_request(VOTE % n, "0" * 64),
    "no signature": lambda n: (
        b"POST /webhook HTTP/1.1\r\nHost: edge\r\nContent-Length: %d\r\n\r\n%s" % (len(VOTE % n), VOTE % n)
    ),
    "not json": lambda n: signed(b"[%d]" % n),
    "invalid vote": lambda n: signed(b'{"event":"VOTE_ADD","guild_id":"x","user_id":%d}' % n),
    "declared too large": lambda n: signed(b" " * (MAX_BODY + 1)),
    "connection close": lambda n: signed(VOTE % n, extra=b"Connection: close\r\n"),
    "http/1.0": lambda n: signed(VOTE % n).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    "chunked": lambda n: (
        b"POST /webhook HTTP/1.1\r\nHost: edge\r\nTransfer-Encoding: chunked\r\n"
        b"X-Sphere-Signature: %s\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (signature(VOTE % n).encode(), len(VOTE % n), VOTE % n)
    ),
    "chunked too large": lambda n: (
        b"POST /webhook HTTP/1.1\r\nHost: edge\r\nTransfer-Encoding: chunked\r\nX-Sphere-Signature: %s\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (signature(b"x").encode(), MAX_BODY + 1, b"x" * (MAX_BODY + 1))
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_direct_answer_is_the_one_the_asgi_endpoint_gives(
    edges: tuple[str, str], client: redis.Redis, case: str
) -> None:
    direct, asgi = edges
    make = CASES[case]
    through_direct = exchange(direct, make(1))
    through_asgi = exchange(asgi, make(2))  # another event: each is new to its edge
    assert through_direct == through_asgi
    assert through_direct[0].startswith(b"HTTP/1.1 ")


def test_a_redelivery_gets_the_same_200_either_way(edges: tuple[str, str], client: redis.Redis) -> None:
    direct, asgi = edges
    first, second = VOTE % 7, VOTE % 8
    exchange(direct, signed(first))
    exchange(asgi, signed(second))
    assert exchange(direct, signed(first)) == exchange(asgi, signed(second))
    assert exchange(direct, signed(first))[0].startswith(b"HTTP/1.1 200 ")


def test_redis_unreachable_gives_the_same_503_either_way() -> None:
    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0", redis_timeout=1.0)
    with running_edge(settings) as direct, running_edge(settings, http="httptools") as asgi:
        through_direct = exchange(direct, signed(VOTE % 1))
        assert through_direct == exchange(asgi, signed(VOTE % 1))
    assert through_direct[0].startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: " in through_direct[0]


def test_a_usual_webhook_never_reaches_the_asgi_endpoint(
    edges: tuple[str, str], client: redis.Redis, asgi_calls: list[str]
) -> None:
    direct, _ = edges
    head, _ = exchange(direct, signed(VOTE % 11))
    assert head.startswith(b"HTTP/1.1 202 ")
    assert asgi_calls == []
    assert client.xlen(EVENTS_STREAM) == 1


def test_a_body_still_arriving_after_its_head_is_handed_to_the_asgi_endpoint(
    edges: tuple[str, str], client: redis.Redis, asgi_calls: list[str]
) -> None:
    direct, _ = edges
    body = VOTE % 12
    request = signed(body)
    with connect(direct, timeout=10) as sock:
        sock.sendall(request[: -len(body) + 5])  # the head and the body's first five bytes
        time.sleep(0.2)
        sock.sendall(request[-len(body) + 5 :])
        head, answer = read_response(sock)
    assert head.startswith(b"HTTP/1.1 202 ") and b'"status":"queued"' in answer
    assert asgi_calls == ["/webhook"]
    [(_, fields)] = client.xrange(EVENTS_STREAM)
    assert fields[F_BODY.encode()] == body  # the part read directly was passed on, byte exact


def test_a_request_pipelined_behind_one_in_flight_goes_through_asgi_in_order(
    edges: tuple[str, str], client: redis.Redis, asgi_calls: list[str]
) -> None:
    direct, _ = edges
    bodies = [VOTE % 21, VOTE % 22]
    with connect(direct, timeout=10) as sock:
        sock.sendall(b"".join(signed(body) for body in bodies))
        answers = read_responses(sock, 2)
    assert [head[:13] for head, _ in answers] == [b"HTTP/1.1 202 "] * 2
    assert asgi_calls == ["/webhook"]  # the first was direct; the second waited behind it
    assert [fields[F_BODY.encode()] for _, fields in client.xrange(EVENTS_STREAM)] == bodies


def pause_writes(url: str, milliseconds: int) -> None:
    with redis.Redis.from_url(url) as client:
        client.execute_command("CLIENT", "PAUSE", milliseconds, "WRITE")


def test_a_request_waiting_for_redis_is_not_cut_off_by_the_keep_alive_timeout(
    shared_redis: RedisServer, client: redis.Redis
) -> None:
    # A refusal answered during the read arms uvicorn's keep-alive timer; the stored request right
    # behind it, still waiting for Redis when the timer would fire, must not lose its connection.
    settings = make_settings(shared_redis.url, redis_timeout=5.0)
    with running_edge(settings, timeout_keep_alive=1) as url, connect(url, timeout=10) as sock:
        pause_writes(shared_redis.url, 2000)
        sock.sendall(post_request(VOTE % 31, "0" * 64) + signed(VOTE % 32))
        answers = read_responses(sock, 2)
    assert [head[:13] for head, _ in answers] == [b"HTTP/1.1 401 ", b"HTTP/1.1 202 "]
    assert client.xlen(EVENTS_STREAM) == 1


def test_nor_is_a_request_behind_it_that_goes_through_asgi(
    shared_redis: RedisServer, client: redis.Redis
) -> None:
    # The same, with the stored request taken by the ASGI endpoint (Expect: 100-continue).
    settings = make_settings(shared_redis.url, redis_timeout=5.0)
    expecting = signed(VOTE % 34, extra=b"Expect: 100-continue\r\n")
    with running_edge(settings, timeout_keep_alive=1) as url, connect(url, timeout=10) as sock:
        pause_writes(shared_redis.url, 2000)
        sock.sendall(post_request(VOTE % 33, "0" * 64) + expecting)
        data = b""
        while b'"status":"queued"' not in data:
            more = sock.recv(65536)
            assert more, f"the edge closed the connection after {data!r}"
            data += more
    assert data.startswith(b"HTTP/1.1 401 ")
    assert client.xlen(EVENTS_STREAM) == 1


def test_a_client_gone_while_its_event_is_stored_costs_nothing_but_the_answer(
    shared_redis: RedisServer, client: redis.Redis, edges: tuple[str, str]
) -> None:
    direct, _ = edges
    pause_writes(shared_redis.url, 500)
    sock = connect(direct, timeout=10)
    sock.sendall(signed(VOTE % 41))
    time.sleep(0.1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    sock.close()
    deadline = time.monotonic() + 10
    while client.xlen(EVENTS_STREAM) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.xlen(EVENTS_STREAM) == 1  # stored, though nobody heard the 202
    head, _ = exchange(direct, signed(VOTE % 42))  # and the edge goes on answering
    assert head.startswith(b"HTTP/1.1 202 ")


def test_direct_answers_under_concurrent_connections_each_store_one_entry(
    edges: tuple[str, str], client: redis.Redis
) -> None:
    direct, _ = edges
    statuses: list[bytes] = []

    def post_many(first: int) -> None:
        with connect(direct, timeout=10) as sock:
            for n in range(first, first + 20):
                sock.sendall(signed(VOTE % n))
                statuses.append(read_response(sock)[0][:13])

    threads = [threading.Thread(target=post_many, args=(1000 * t,)) for t in range(1, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [b"HTTP/1.1 202 "] * 100
    assert client.xlen(EVENTS_STREAM) == 100


def test_a_shutdown_waits_for_a_direct_answer_and_then_closes_its_connection(
    shared_redis: RedisServer, client: redis.Redis
) -> None:
    settings = make_settings(shared_redis.url, redis_timeout=5.0)
    with running_edge(settings) as url:
        sock = connect(url, timeout=10)
        pause_writes(shared_redis.url, 1500)  # the event waits in Redis while the edge stops
        sock.sendall(signed(VOTE % 51))
        time.sleep(0.2)
    # Leaving the block stopped the edge: uvicorn waited for the answer before closing.
    with sock:
        head, body = read_response(sock)
        assert sock.recv(1) == b""  # then closed
    assert head.startswith(b"HTTP/1.1 202 ") and b"\r\nconnection: close" in head
    assert b'"status":"queued"' in body
    assert client.xlen(EVENTS_STREAM) == 1


def test_this_uvicorn_fits_the_direct_path() -> None:
    assert unsupported_reason() is None


def test_a_uvicorn_whose_internals_changed_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    class Cycle:
        def __init__(self, scope: Any, transport: Any, flow: Any, on_response: Any) -> None:
            pass

    monkeypatch.setattr(httptools_impl, "RequestResponseCycle", Cycle)
    assert unsupported_reason() == "RequestResponseCycle takes (scope, transport, flow, on_response)"
    monkeypatch.delattr(httptools_impl.HttpToolsProtocol, "_unset_keepalive_if_required")
    assert unsupported_reason() == "HttpToolsProtocol has no _unset_keepalive_if_required"


def test_under_such_a_uvicorn_every_webhook_goes_through_asgi(
    monkeypatch: pytest.MonkeyPatch,
    shared_redis: RedisServer,
    client: redis.Redis,
    asgi_calls: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(protocol, "_UNSUPPORTED", "RequestResponseCycle takes (something else)")
    monkeypatch.setattr(protocol, "_told", False)
    with running_edge(make_settings(shared_redis.url)) as edge:
        for user in (21, 22):
            head, _ = exchange(edge, signed(VOTE % user))
            assert head.startswith(b"HTTP/1.1 202 ")
    assert asgi_calls == ["/webhook", "/webhook"]
    assert client.xlen(EVENTS_STREAM) == 2
    told = [r.getMessage() for r in caplog.records if "does not fit the direct path" in r.getMessage()]
    assert told == [
        "every webhook goes through ASGI: this uvicorn does not fit the direct path "
        "(RequestResponseCycle takes (something else))"
    ]
