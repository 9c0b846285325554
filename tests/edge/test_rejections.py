"""The edge's log of refused requests: the pure record-building, and the recorder against a real Redis."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from relay.core.keys import REJECTED_COUNT, REJECTED_STREAM
from relay.edge.rejections import (
    BODY_HEAD_BYTES,
    MAX_HEADER_CHARS,
    MAX_HEADERS,
    Rejection,
    RejectionRecorder,
    TokenBucket,
    build_record,
    clean_headers,
    client_address,
    recent,
    totals,
)
from tests.conftest import SECRET
from tests.support.redis_server import free_port

SIGNATURE = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def scope(*headers: tuple[bytes, bytes], client: tuple[str, int] | None = ("203.0.113.9", 40123)) -> dict:
    return {"type": "http", "client": client, "headers": list(headers)}


class Clock:
    """A clock the test moves by hand, so that the token bucket's decisions are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- pure ----------------------------------------------------------------------------------------


def test_the_bucket_allows_a_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)

    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.4) is False  # 0.8 of a token
    assert bucket.take(0.5) is True  # 1.0
    assert bucket.take(100.0) is True  # refilled, but never beyond the burst
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]


def test_headers_lose_credentials_and_keep_a_short_signature() -> None:
    headers = clean_headers(
        [
            (b"host", b"relay.example"),
            (b"authorization", b"Bearer hunter2"),
            (b"Cookie", b"session=abc"),
            (b"proxy-authorization", b"Basic Zm9vOmJhcg=="),
            (b"x-sphere-signature", SIGNATURE.encode()),
            (b"user-agent", b"x" * 1000),
        ]
    )

    assert headers == [
        ("host", "relay.example"),
        ("x-sphere-signature", f"{SIGNATURE[:12]}… (64 chars)"),
        ("user-agent", "x" * MAX_HEADER_CHARS + "…"),
    ]
    assert SIGNATURE not in json.dumps(headers)


def test_headers_are_bounded_in_number() -> None:
    headers = clean_headers([(f"x-h{i}".encode(), b"v") for i in range(100)])
    assert len(headers) == MAX_HEADERS


def test_client_address_formats_ipv4_ipv6_and_none() -> None:
    assert client_address(scope()) == "203.0.113.9:40123"
    assert client_address(scope(client=("::1", 5000))) == "[::1]:5000"
    assert client_address(scope(client=None)) == ""


def test_a_record_keeps_the_head_of_the_body() -> None:
    record = build_record(
        received_ms=1,
        status=401,
        reason="invalid_signature",
        size=5000,
        client="",
        headers=[],
        body=b"a" * 5000,
    )
    assert record["body_head"] == b"a" * BODY_HEAD_BYTES


# -- against Redis -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_refusal_is_recorded_and_read_back(redis: Redis) -> None:
    recorder = RejectionRecorder(redis, timeout=2.0)
    body = '{"event":"VOTE_ADD","note":"é"}'.encode()
    recorder.record(
        scope((b"x-sphere-signature", SIGNATURE.encode()), (b"content-type", b"application/json")),
        401,
        "invalid_signature",
        len(body),
        body,
        1718000000123,
    )
    await recorder.close()

    [rejection] = await recent(redis, 10)
    assert rejection == Rejection(
        id=rejection.id,
        received_ms=1718000000123,
        status=401,
        reason="invalid_signature",
        size=len(body),
        client="203.0.113.9:40123",
        headers=[
            ("x-sphere-signature", f"{SIGNATURE[:12]}… (64 chars)"),
            ("content-type", "application/json"),
        ],
        body_head=body,
        skipped=0,
    )
    assert await totals(redis) == (1, 1)


@pytest.mark.anyio
async def test_beyond_the_rate_refusals_are_counted_not_recorded(redis: Redis) -> None:
    clock = Clock()
    recorder = RejectionRecorder(redis, timeout=2.0, rate=1.0, burst=3, max_in_flight=100, clock=clock)
    for _ in range(10):
        recorder.record(scope(), 401, "invalid_signature", 0, b"", 1)
    await recorder.flush()
    assert await redis.xlen(REJECTED_STREAM) == 3

    clock.now += 1.0  # one more token: the next record says how many were skipped before it
    recorder.record(scope(), 400, "invalid_body", 0, b"", 2)
    await recorder.close()

    newest, *_ = await recent(redis, 10)
    assert (newest.status, newest.skipped) == (400, 7)
    assert await totals(redis) == (11, 4)


@pytest.mark.anyio
async def test_the_stream_stays_capped_under_a_flood(redis: Redis) -> None:
    recorder = RejectionRecorder(redis, timeout=2.0, burst=1000, maxlen=10)
    for _ in range(400):
        recorder.record(scope(), 401, "invalid_signature", 0, b"", 1)
        await recorder.flush()
    await recorder.close()

    assert await redis.xlen(REJECTED_STREAM) <= 10 + 100  # MAXLEN ~ trims whole nodes of 100 entries
    assert int(await redis.get(REJECTED_COUNT)) == 400


@pytest.mark.anyio
async def test_writes_in_flight_are_bounded(redis: Redis) -> None:
    recorder = RejectionRecorder(redis, timeout=2.0, burst=100, max_in_flight=2)
    for _ in range(5):  # no await in between: the first two are in flight, the rest only counted
        recorder.record(scope(), 401, "invalid_signature", 0, b"", 1)
    await recorder.close()

    assert await totals(redis) == (5, 2)


@pytest.mark.anyio
async def test_an_unreachable_redis_neither_raises_nor_hangs(caplog: pytest.LogCaptureFixture) -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    recorder = RejectionRecorder(client, timeout=1.0)
    try:
        recorder.record(scope((b"authorization", SECRET.encode())), 401, "invalid_signature", 0, b"", 1)
        await recorder.close()
    finally:
        await client.aclose()

    warnings = [r.getMessage() for r in caplog.records if r.name == "relay.edge.rejections"]
    assert warnings and all("could not" in w for w in warnings)
    assert SECRET not in caplog.text
