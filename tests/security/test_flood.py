"""A flood of forged requests does not keep valid ones from being stored.

The edge runs as production runs it, in a process of its own (a flood sent from this process must
not share an interpreter with the server). The same valid workload (`VALID` signed votes over 4
kept-alive connections) is sent twice: alone, then while 16 connections post forged requests as
fast as they are answered.

What is asserted: every valid request gets its 202 within the client's bounded timeout, each is
stored, every forged one gets 401 and nothing forged is stored, and the flood really ran (it got
at least as many answers as the valid workload). What is only printed: how much slower the valid
requests were during the flood (median and p95 ratios). Timing depends on the machine and its
load, so no test asserts on it. Run it with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from relay.core.keys import EVENTS_STREAM
from tests.conftest import SECRET
from tests.security.edge_process import PRODUCTION_FLAGS, EdgeProcess
from tests.security.rawhttp import exchange, port_of, post_request, signature

pytestmark = pytest.mark.anyio

VALID = 150
VALID_CONNECTIONS = 4
FLOOD_CONNECTIONS = 16
CLIENT_TIMEOUT = 10.0
"""No single request may take longer; a starved valid request fails the test."""

FORGED = post_request(b'{"event":"VOTE_ADD","guild_id":"1","user_id":"2"}' + b" " * 900, "0" * 64)


@pytest.fixture
def edge_url(redis_url: str, tmp_path: Path) -> Iterator[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
    env |= {"RELAY_SECRET": SECRET, "RELAY_REDIS_URL": redis_url, "RELAY_LOG_LEVEL": "WARNING"}
    edge = EdgeProcess(env, tmp_path / "edge.log", "--loop", "uvloop", *PRODUCTION_FLAGS).wait_ready()
    try:
        yield edge.url
    finally:
        edge.stop()


async def valid_workload(url: str, first_user: int) -> list[float]:
    """`VALID` new signed votes over `VALID_CONNECTIONS` connections; their latencies in seconds."""
    users = iter(range(first_user, first_user + VALID))
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
        try:
            for user in users:
                body = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"%d"}' % user
                started = time.perf_counter()
                async with asyncio.timeout(CLIENT_TIMEOUT):
                    status = await exchange(reader, writer, post_request(body, signature(body)))
                latencies.append(time.perf_counter() - started)
                assert status == 202, f"vote of user {user}: {status}"
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(VALID_CONNECTIONS)))
    return latencies


async def flood(url: str, going: asyncio.Event, stop: asyncio.Event, answers: Counter[int]) -> None:
    """Forged requests, one after the other on one kept-alive connection, until `stop`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    try:
        while not stop.is_set():
            async with asyncio.timeout(CLIENT_TIMEOUT):
                answers[await exchange(reader, writer, FORGED)] += 1
            going.set()
    finally:
        writer.close()


def summary(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


async def test_a_forged_flood_does_not_starve_valid_requests(edge_url: str, redis_url: str) -> None:
    alone = await valid_workload(edge_url, first_user=1)

    stop = asyncio.Event()
    answers: Counter[int] = Counter()
    going = [asyncio.Event() for _ in range(FLOOD_CONNECTIONS)]
    flooders = [asyncio.create_task(flood(edge_url, g, stop, answers)) for g in going]
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT):  # every flood connection has had an answer
            await asyncio.gather(*(g.wait() for g in going))
        flooded = await valid_workload(edge_url, first_user=100_000)
    finally:
        stop.set()
        await asyncio.gather(*flooders)

    with redis.Redis.from_url(redis_url) as store:
        assert store.xlen(EVENTS_STREAM) == 2 * VALID  # every valid one stored, no forged one
    assert set(answers) == {401}, answers
    assert answers[401] >= VALID, "the flood did not get going"

    (alone_p50, alone_p95), (flood_p50, flood_p95) = summary(alone), summary(flooded)
    print(
        f"\nflood: {VALID} valid requests over {VALID_CONNECTIONS} connections, alone and beside "
        f"{answers[401]} forged ones over {FLOOD_CONNECTIONS} connections (all 401)\n"
        f"  alone:   p50 {alone_p50 * 1000:.1f} ms, p95 {alone_p95 * 1000:.1f} ms\n"
        f"  flooded: p50 {flood_p50 * 1000:.1f} ms, p95 {flood_p95 * 1000:.1f} ms\n"
        f"  ratio:   p50 {flood_p50 / alone_p50:.1f}x, p95 {flood_p95 / alone_p95:.1f}x"
    )
