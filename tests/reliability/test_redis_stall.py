"""Redis stalls (SIGSTOP for seconds, then SIGCONT) under a steady flow of deliveries.

`tests/edge/test_webhook_faults.py` checks one request against a stopped Redis. This run keeps
`SENDERS` clients posting for the whole stall, through a real edge process and with a worker
process running: every answer during the stall is a 503 with Retry-After (an answer, not a hang:
the client's own timeout, far above the edge's, is the hang detector), the edge's readiness probe
says 503 too, and once Redis runs again the edge answers 2xx without a restart. Deliveries refused
during the stall may still have been stored (Redis runs the commands waiting in its sockets when it
wakes up); delivering them again, as Sphere does after a 503, stores none of them twice. The worker,
stalled with Redis, handles everything stored once it wakes, in the same process.

The answer times are printed (``pytest -s``), not asserted: only "answered, not hung" is.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from relay.core.keys import EVENTS_STREAM
from tests.conftest import SECRET
from tests.reliability.support import CLIENT_KEEPALIVE_SECONDS, EdgeProcess, handled, signature, until, vote
from tests.support.redis_server import RedisServer
from tests.support.worker_process import WorkerPool, worker_pool

pytestmark = pytest.mark.slow

REDIS_TIMEOUT = 1.0
HANG = REDIS_TIMEOUT + 10.0
"""A request unanswered this long counts as hung: the bound is generous, the point is "answered"."""
STALL_SECONDS = 4.0
SENDERS = 8
FIRST_USER = 400000000000000000


@pytest.fixture
def edge(own_redis: RedisServer, tmp_path: Path) -> Iterator[EdgeProcess]:
    settings = {"redis_url": own_redis.url, "secret": SECRET, "redis_timeout": str(REDIS_TIMEOUT)}
    process = EdgeProcess(tmp_path, settings).start()
    yield process
    process.stop()


@pytest.fixture
def workers(own_redis: RedisServer, tmp_path: Path, handled_dir: Path) -> Iterator[WorkerPool]:
    settings = {"redis_url": own_redis.url, "secret": SECRET, "worker_metrics": "off"}
    with worker_pool(tmp_path, settings) as pool:
        yield pool


Posted = tuple[int, float, httpx.Response]
"""(user id, seconds to the answer, the answer)"""


@dataclass
class StallRun:
    before: list[Posted]
    stalled: list[Posted]
    probes: list[tuple[float, int]]
    after: list[Posted]
    again: list[Posted]


async def post(http: httpx.AsyncClient, user_id: int) -> Posted:
    body = vote(user_id)
    started = time.monotonic()
    response = await http.post("/webhook", content=body, headers={"X-Sphere-Signature": signature(body)})
    return user_id, time.monotonic() - started, response


async def stall_run(base_url: str, redis_server: RedisServer) -> StallRun:
    users = iter(range(FIRST_USER, FIRST_USER + 1_000_000))
    limits = httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_SECONDS)
    async with httpx.AsyncClient(base_url=base_url, timeout=HANG, limits=limits) as http:
        before = [await post(http, next(users)) for _ in range(10)]
        assert [r.status_code for _, _, r in before] == [202] * 10

        stalled: list[Posted] = []
        probes: list[tuple[float, int]] = []
        redis_server.pause()  # SIGSTOP: connections stay open, nothing answers
        try:
            stall_ends = time.monotonic() + STALL_SECONDS  # the fault's duration

            async def sender() -> None:
                while time.monotonic() < stall_ends:
                    stalled.append(await post(http, next(users)))

            async def prober() -> None:
                while time.monotonic() < stall_ends:
                    started = time.monotonic()
                    status = (await http.get("/readyz")).status_code
                    probes.append((time.monotonic() - started, status))

            await asyncio.gather(*(sender() for _ in range(SENDERS)), prober())
        finally:
            redis_server.resume()  # SIGCONT

        after = [await post(http, next(users)) for _ in range(10)]
        # Sphere delivers every refused event again; Redis may have stored some of them on waking.
        again = [await post(http, user) for user, _, r in stalled if r.status_code == 503]

    return StallRun(before, stalled, probes, after, again)


def test_a_stalled_redis_gets_503s_not_hangs_and_everything_recovers_in_place(
    own_redis: RedisServer, edge: EdgeProcess, workers: WorkerPool, handled_dir: Path
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    worker = workers.start("tests.reliability.tasks_files")
    worker.wait_reading(client)

    run = asyncio.run(stall_run(edge.url, own_redis))
    stalled, probes, again = run.stalled, run.probes, run.again

    # During the stall: answers, every one of them a 503 with Retry-After, from a live edge.
    assert len(stalled) >= SENDERS
    assert Counter(r.status_code for _, _, r in stalled) == {503: len(stalled)}
    assert all(r.headers["retry-after"] and r.json() == {"error": "redis_unavailable"} for _, _, r in stalled)
    assert probes and {status for _, status in probes} == {503}
    assert edge.running()

    # After SIGCONT: new events stored, refused ones delivered again stored once, by the same edge.
    assert [r.status_code for _, _, r in run.after] == [202] * 10
    assert {r.status_code for _, _, r in again} <= {200, 202}
    bodies = Counter(fields[b"body"] for _, fields in client.xrange(EVENTS_STREAM))
    assert max(bodies.values()) == 1, "an event was stored twice"
    sent_users = {user for user, _, _ in run.before + stalled + run.after}
    assert {int(json.loads(body)["user_id"]) for body in bodies} == sent_users

    # The worker, stalled with Redis, handles everything stored, without a restart.
    until(lambda: len({line.entry_id for line in handled(handled_dir)}) == len(bodies), 60, "all handled")
    assert worker.running() and {line.pid for line in handled(handled_dir)} == {worker.pid}
    client.close()

    answered = [seconds for _, seconds, _ in stalled]
    print(
        f"\nstall figures: stall {STALL_SECONDS}s, redis_timeout {REDIS_TIMEOUT}s, {len(stalled)} deliveries "
        f"during the stall all 503, slowest answer {max(answered):.2f}s, readyz {len(probes)}x 503 "
        f"(slowest {max(s for s, _ in probes):.2f}s); redelivered {len(again)}: "
        f"{Counter(r.status_code for _, _, r in again)}; stored {len(bodies)}, each once; handled all"
    )
