"""The top.gg-like sender of `bench.deploys`: its signatures, and its retries against real servers.

The retry waits are shortened here (the count and the decisions are what is checked); the bench
uses top.gg's own (1, 2 and 4 s, 5 s per attempt).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from bench.sender import (
    ATTEMPT_TIMEOUT,
    RETRY_DELAYS,
    Target,
    request_bytes,
    sphere_headers,
    sphere_vote,
    status_of,
    topgg_headers,
    topgg_vote,
    verdict,
    vote_key,
)
from relay.edge.signature import verify
from tests.support.redis_server import free_port

FAST = (0.01, 0.01, 0.01)


def test_retries_as_top_gg_v1_documents() -> None:
    assert (RETRY_DELAYS, ATTEMPT_TIMEOUT) == ((1.0, 2.0, 4.0), 5.0)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "acknowledged"), (204, "acknowledged"), (None, "retry"), (500, "retry"), (503, "retry"),
     (400, "refused"), (401, "refused"), (404, "refused"), (429, "refused")],
)  # fmt: skip
def test_a_5xx_or_no_answer_is_retried_and_a_4xx_is_not(status: int | None, expected: str) -> None:
    assert verdict(status) == expected


def test_a_sphere_signature_is_what_the_relay_verifies() -> None:
    body = sphere_vote("123456789")
    header = sphere_headers(body, "a" * 64, 0.0)["X-Sphere-Signature"]
    assert verify(body, header, [b"a" * 64])
    assert not verify(body, header, [b"b" * 64])


def test_a_top_gg_signature_is_the_hmac_of_the_timestamp_dot_body_under_the_whole_secret() -> None:
    body = topgg_vote("808499215864008704")
    header = topgg_headers(body, "whs_secret", 1733500000.7)["x-topgg-signature"]
    stamp, digest = header.split(",")
    assert stamp == "t=1733500000"
    # As top.gg's Python SDK checks it: the key is the whole secret, "whs_" included.
    expected = hmac.new(b"whs_secret", b"1733500000." + body, hashlib.sha256).hexdigest()
    assert digest == f"v1={expected}"


def test_each_scheme_s_vote_carries_its_key() -> None:
    assert vote_key("sphere", sphere_vote("42")) == "42"
    assert vote_key("topgg", topgg_vote("808499215864008704")) == "808499215864008704"


def test_a_status_line_is_read_and_anything_else_is_not() -> None:
    assert status_of(b"HTTP/1.1 503 Service Unavailable\r\n") == 503
    assert status_of(b"garbage\r\n") is None
    assert status_of(b"HTTP/1.1 abc\r\n") is None


def test_a_request_is_complete_and_closes_its_connection() -> None:
    request = request_bytes("/webhook", "h:1", b"{}", {"X-Sphere-Signature": "00"})
    head, body = request.split(b"\r\n\r\n")
    assert body == b"{}"
    assert b"Content-Length: 2" in head and b"Connection: close" in head and b"X-Sphere-Signature: 00" in head


@asynccontextmanager
async def scripted_server(answers: Sequence[int | None]) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A real HTTP server answering its n-th request with ``answers[n]`` (None: never answers)."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length")).split(b":")[1]
        )
        received.append(await reader.readexactly(length))
        status = answers[min(len(received), len(answers)) - 1]
        if status is None:
            await reader.read()  # until the sender gives up and closes
        else:
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % status)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], received
    finally:
        server.close()


def deliver(answers: Sequence[int | None]) -> tuple[list[int | None], str, list[str], list[bytes]]:
    async def main() -> tuple[list[int | None], str, list[str], list[bytes]]:
        async with scripted_server(answers) as (port, received):
            target = Target("127.0.0.1", port, "sphere", "s" * 64, delays=FAST, timeout=0.5)
            delivery = await target.deliver("123")
            return delivery.statuses, delivery.outcome, delivery.failures, received

    return asyncio.run(main())


def test_a_vote_answered_503_twice_is_acknowledged_on_the_third_attempt() -> None:
    statuses, outcome, failures, received = deliver([503, 503, 200])
    assert (statuses, outcome, failures) == ([503, 503, 200], "acknowledged", ["503", "503"])
    assert received == [sphere_vote("123")] * 3


def test_a_vote_failing_four_times_is_lost_after_three_retries() -> None:
    statuses, outcome, _, received = deliver([500])
    assert (statuses, outcome, len(received)) == ([500] * 4, "lost", 4)


def test_a_4xx_is_not_retried() -> None:
    statuses, outcome, _, received = deliver([401, 200])
    assert (statuses, outcome, len(received)) == ([401], "refused", 1)


def test_an_unanswered_attempt_times_out_and_is_retried() -> None:
    statuses, outcome, failures, _ = deliver([None, 200])
    assert (statuses, outcome, failures) == ([None, 200], "acknowledged", ["timeout"])


def test_a_refused_connection_is_retried_until_the_vote_is_lost() -> None:
    async def main() -> tuple[str, list[str]]:
        target = Target("127.0.0.1", free_port(), "sphere", "s" * 64, delays=FAST)
        delivery = await target.deliver("123")
        return delivery.outcome, delivery.failures

    assert asyncio.run(main()) == ("lost", ["refused"] * 4)
