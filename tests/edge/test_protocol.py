"""The edge's HTTP protocol answers in one write: the head waits for the body, never for a 1xx.

The head limits and deadlines of `relay.edge.protocol` are tested with hostile clients in
tests/security/test_slow_clients.py; here, that ordinary answers still come out whole and in order.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from relay.edge.protocol import EdgeHttpProtocol, OneWriteTransport, bounds_unsupported_reason
from tests.conftest import make_settings
from tests.security.rawhttp import connect, post_request, read_answer, read_response, signature
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer


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
    probe = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout)\n"
        "from uvicorn.protocols.http import httptools_impl\n"
        "del httptools_impl.HttpToolsProtocol.on_body\n"
        "from relay.edge import protocol\n"
        "print(protocol.EdgeHttpProtocol.__name__, protocol.bounds_unsupported_reason())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("_PlainHttpToolsProtocol HttpToolsProtocol has no on_body"), done.stdout
