"""What a kill -9 of a single Redis loses, with ``appendfsync everysec`` and ``always``: figures for
docs/RELIABILITY.md's durability table.

An edge process posts `EVENTS` unique signed votes at a steady rate into a Redis with the append-only
file on; Redis is killed -9 halfway and started again from its file (same port, same directory).
Every vote answered 2xx must be in the stream afterwards. Asserted for ``always``; for ``everysec``
the same check is printed (a process kill leaves the written file in the kernel's page cache, so it
should lose nothing either; a power cut, which no test here makes, loses up to a second).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from relay.core.keys import EVENTS_STREAM
from tests.reliability.support import CLIENT_KEEPALIVE_SECONDS, EdgeProcess, vote
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

SECRET = "k7Qm2vX9pL4rT8wZ3nB6yH1c"
EVENTS = 600
RATE = 200.0
FIRST_USER = 60_000_000


@pytest.fixture(params=["always", "everysec"])
def aof_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory, appendonly=True, fsync=request.param)
    server.start()
    yield server
    server.kill()


async def send_all(base_url: str, server: RedisServer) -> dict[int, tuple[int | None, str | None]]:
    answers: dict[int, tuple[int | None, str | None]] = {}
    limits = httpx.Limits(max_connections=32, keepalive_expiry=CLIENT_KEEPALIVE_SECONDS)
    loop = asyncio.get_running_loop()
    restarted = threading.Thread(target=server.restart)  # kill -9, then start from the same file
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as http:

        async def send(user: int) -> None:
            body = vote(user)
            signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            try:
                response = await http.post(
                    "/webhook", content=body, headers={"X-Sphere-Signature": signature}
                )
            except httpx.HTTPError:
                answers[user] = (None, None)
            else:
                answers[user] = (
                    response.status_code,
                    response.json().get("id") if response.is_success else None,
                )

        tasks = []
        start = loop.time()
        for i in range(EVENTS):
            await asyncio.sleep(max(0.0, start + i / RATE - loop.time()))
            if i == EVENTS // 2:
                restarted.start()
            tasks.append(asyncio.create_task(send(FIRST_USER + i)))
        await asyncio.gather(*tasks)
    await asyncio.to_thread(restarted.join)
    return answers


def test_a_kill_9_of_redis_loses_no_acknowledged_event(aof_redis: RedisServer, tmp_path: Path) -> None:
    edge = EdgeProcess(tmp_path, {"redis_url": aof_redis.url, "secret": SECRET, "log_level": "ERROR"}).start()
    try:
        answers = asyncio.run(send_all(edge.url, aof_redis))
    finally:
        edge.stop()
    client = redis.Redis.from_url(aof_redis.url)
    try:
        stored = {entry_id.decode() for entry_id, _ in client.xrange(EVENTS_STREAM)}
    finally:
        client.close()
    acknowledged = {user: entry for user, (status, entry) in answers.items() if status == 202}
    lost = sorted(user for user, entry in acknowledged.items() if entry not in stored)
    statuses = sorted({status for status, _ in answers.values()}, key=str)
    print(
        f"\nappendfsync {aof_redis.fsync}, Redis killed -9 and restarted: {len(answers)} sent, "
        f"{len(acknowledged)} acknowledged, {len(lost)} acknowledged but lost, answers {statuses}"
    )
    assert set(statuses) <= {202, 503}
    if aof_redis.fsync == "always":
        assert not lost, f"acknowledged but lost: {lost[:10]}"
