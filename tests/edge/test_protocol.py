"""The edge's HTTP protocol answers in one write: the head waits for the body, never for a 1xx.

The head limits and deadlines of `relay.edge.protocol` are tested with hostile clients in
tests/security/test_slow_clients.py; here, that ordinary answers still come out whole, in order,
byte for byte as uvicorn's own protocol gives them, and that a connection outlives a slow Redis, a
client that leaves, and a shutdown as it should.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from relay.core.keys import EVENTS_STREAM
from relay.edge.protocol import EdgeHttpProtocol, OneWriteTransport, bounds_unsupported_reason
from tests.conftest import make_settings
from tests.security.rawhttp import connect, post_request, read_answer, read_response, signature
from tests.support.edge_server import running_edge
from tests.support.processes import python_with_a_library_changed
from tests.support.redis_server import RedisServer, free_port


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what it was asked to do, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))

    def is_closing(self) -> bool:
        return False


HEAD = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n"


def test_a_response_head_goes_out_with_the_first_write_of_its_body() -> None:
    transport = RecordingTransport()
    view = OneWriteTransport(transport)
    view.write(HEAD)
    assert transport.calls == []
    view.write(b"{}")
    view.write(b"more")  # a streamed body's later parts go at once
    assert transport.calls == [("write", HEAD + b"{}"), ("write", b"more")]


def test_a_head_with_no_body_goes_at_the_flush_and_before_a_close() -> None:
    transport = RecordingTransport()
    view = OneWriteTransport(transport)
    view.write(HEAD)
    view.flush()
    view.flush()  # nothing left
    assert transport.calls == [("write", HEAD)]

    transport = RecordingTransport()
    view = OneWriteTransport(transport)
    view.write(HEAD)
    view.close()
    assert transport.calls == [("write", HEAD), ("close", b"")]


def test_an_interim_100_continue_is_never_held() -> None:
    transport = RecordingTransport()
    view = OneWriteTransport(transport)
    view.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.calls == [("write", b"HTTP/1.1 100 Continue\r\n\r\n")]
    assert view.is_closing() is False  # anything else is the connection's own


# -- through a real edge --------------------------------------------------------------------------

VOTE = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"%d"}'


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    with running_edge(make_settings(shared_redis.url)) as url:
        yield url


def read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """`count` answers with a Content-Length each, read off one connection as they come."""
    data, answers = b"", []
    while len(answers) < count:
        head, found, rest = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            None,
        )
        if found and length is not None and len(rest) >= length:
            answers.append((head, rest[:length]))
            data = rest[length:]
            continue
        more = sock.recv(65536)
        assert more, "the edge closed the connection"
        data += more
    assert data == b""  # nothing but the answers
    return answers


def test_pipelined_posts_get_whole_answers_in_order(edge_url: str) -> None:
    bodies = [VOTE % (910_000 + n) for n in range(3)]
    with connect(edge_url) as sock:
        sock.sendall(b"".join(post_request(body, signature(body)) for body in bodies))
        answers = read_responses(sock, len(bodies))
    for head, body in answers:
        assert head.startswith(b"HTTP/1.1 202 ")
        assert json.loads(body)["status"] == "queued"
    assert len({json.loads(body)["id"] for _, body in answers}) == 3


def test_an_answer_without_a_body_to_write_still_gets_its_head(edge_url: str) -> None:
    # HEAD: uvicorn writes no body at all, so the head goes out when the response ends.
    with connect(edge_url, timeout=5) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: edge\r\n\r\n")
        head = read_answer(sock)
    assert head.startswith(b"HTTP/1.1 405 ") and head.endswith(b"\r\n\r\n")  # /healthz is GET only
    assert b"content-length: " in head


def test_expect_100_continue_gets_the_interim_answer_before_the_body_is_sent(edge_url: str) -> None:
    body = VOTE % 920_000
    request = post_request(body, signature(body), extra=b"Expect: 100-continue\r\n")
    head_only, _, _ = request.partition(b"\r\n\r\n")
    with connect(edge_url, timeout=5) as sock:
        sock.sendall(head_only + b"\r\n\r\n")
        try:
            interim = read_answer(sock)
        except TimeoutError:
            pytest.fail("no 100 Continue: the edge held it back")
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        head, answer = read_response(sock)
    assert head.startswith(b"HTTP/1.1 202 ")
    assert json.loads(answer)["status"] == "queued"


def test_the_installed_uvicorn_fits_the_head_bounds() -> None:
    assert bounds_unsupported_reason() is None
    assert EdgeHttpProtocol.__name__ == "EdgeHttpProtocol"


def test_a_uvicorn_without_the_methods_it_extends_gets_plain_httptools_with_a_warning() -> None:
    # A uvicorn release that changed its httptools protocol, made here by removing one method
    # before relay.edge.protocol is imported, in a process of its own.
    out = python_with_a_library_changed(
        "from uvicorn.protocols.http import httptools_impl\ndel httptools_impl.HttpToolsProtocol.on_message_complete",
        "from relay.edge import protocol\n"
        "print(protocol.EdgeHttpProtocol.__name__, protocol.bounds_unsupported_reason())",
    )

    assert out.startswith("_PlainHttpToolsProtocol HttpToolsProtocol has no on_message_complete"), out


# -- the same answers as uvicorn's own protocol ---------------------------------------------------

MAX_BODY = 1024


def signed(body: bytes, *, extra: bytes = b"") -> bytes:
    return post_request(body, signature(body), extra=extra)


def exchange(url: str, request: bytes) -> tuple[bytes, bytes]:
    """Send `request` on a new connection; its answer, with the ``date`` header and ids masked."""
    with connect(url, timeout=10) as sock:
        sock.sendall(request)
        head, body = read_response(sock)
    head = re.sub(rb"\r\ndate: [^\r]*", b"\r\ndate: *", head)
    return head, re.sub(rb'"id":"\d+-\d+"', b'"id":"*"', body)


@pytest.fixture(scope="module")
def both_protocols(shared_redis: RedisServer) -> Iterator[tuple[str, str]]:
    """``(the edge's protocol, uvicorn's own httptools)`` edges on one Redis."""
    settings = make_settings(shared_redis.url, max_body_bytes=MAX_BODY)
    with running_edge(settings) as edge, running_edge(settings, http="httptools") as plain:
        yield edge, plain


CASES: dict[str, Callable[[int], bytes]] = {
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
def test_an_answer_is_the_one_uvicorns_own_protocol_gives(
    both_protocols: tuple[str, str], client: redis.Redis, case: str
) -> None:
    edge, plain = both_protocols
    make = CASES[case]
    ours = exchange(edge, make(1))
    assert ours == exchange(plain, make(2))  # another event: each is new to its edge
    assert ours[0].startswith(b"HTTP/1.1 ")


# -- connections around a slow Redis, a client that leaves, a shutdown ----------------------------


def pause_writes(url: str, milliseconds: int) -> None:
    with redis.Redis.from_url(url) as admin:
        admin.execute_command("CLIENT", "PAUSE", milliseconds, "WRITE")


def test_a_request_waiting_for_redis_is_not_cut_off_by_the_keep_alive_timeout(
    shared_redis: RedisServer, client: redis.Redis
) -> None:
    # The refusal answered first would arm a keep-alive timer; the stored request right behind it,
    # still waiting for Redis when that timer would fire, must not lose its connection.
    settings = make_settings(shared_redis.url, redis_timeout=5.0)
    with running_edge(settings, timeout_keep_alive=1) as url, connect(url, timeout=10) as sock:
        pause_writes(shared_redis.url, 2000)
        sock.sendall(post_request(VOTE % 31, "0" * 64) + signed(VOTE % 32))
        answers = read_responses(sock, 2)
    assert [head[:13] for head, _ in answers] == [b"HTTP/1.1 401 ", b"HTTP/1.1 202 "]
    assert client.xlen(EVENTS_STREAM) == 1


def test_a_client_gone_while_its_event_is_stored_costs_nothing_but_the_answer(
    shared_redis: RedisServer, client: redis.Redis, edge_url: str
) -> None:
    pause_writes(shared_redis.url, 500)
    sock = connect(edge_url, timeout=10)
    sock.sendall(signed(VOTE % 41))
    time.sleep(0.1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    sock.close()
    deadline = time.monotonic() + 10
    while client.xlen(EVENTS_STREAM) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.xlen(EVENTS_STREAM) == 1  # stored, though nobody heard the 202
    head, _ = exchange(edge_url, signed(VOTE % 42))  # and the edge goes on answering
    assert head.startswith(b"HTTP/1.1 202 ")


def test_a_shutdown_waits_for_an_answer_and_then_closes_its_connection(
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


def test_redis_unreachable_gives_the_same_503_as_uvicorns_own_protocol() -> None:
    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0", redis_timeout=1.0)
    with running_edge(settings) as edge, running_edge(settings, http="httptools") as plain:
        ours = exchange(edge, signed(VOTE % 1))
        assert ours == exchange(plain, signed(VOTE % 1))
    assert ours[0].startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: " in ours[0]
