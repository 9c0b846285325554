"""The chaos run: thousands of signed events through a real edge and real workers while processes die.

What runs, all on loopback:

- a redis-server with append-only persistence and ``appendfsync always``;
- the edge, ``uvicorn relay.app:app`` in its own process, never restarted;
- two ``arq worker.main.WorkerSettings`` processes running `tests.reliability.tasks_files`: one
  handler writes every vote it handles to a file (evidence outside the Redis being killed), the
  other dead-letters on purpose (`Permanent`) every vote whose user id ends in 7.

`EVENTS` distinct votes are sent, `CONCURRENCY` at a time, paced over several seconds so that the
faults land while they flow. Faults, in order, at set fractions of the events sent:

1. one worker is killed -9 and a new one started;
2. Redis is killed -9, stays down for `REDIS_DOWN_SECONDS`, and is started again (same port, same
   append-only file);
3. the other worker is killed -9 and a new one started;
4. both workers are killed -9 at once and two new ones started.

Then, once the pipeline is quiet (every entry read and acknowledged, no job left in arq's queue),
within a bound: every event answered 2xx was handled at least once, under the entry id it was
answered with; every other answer was 503 (with Retry-After), none missing; the dead letters are
exactly the failing handler's, one or more for each of its 2xx events. Duplicates are counted and
reported, not refused: delivery is at least once. The figures are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import pytest
import redis

from relay.core.keys import DEAD_STREAM
from tests.conftest import SECRET
from tests.reliability.support import (
    CLIENT_KEEPALIVE_SECONDS,
    EdgeProcess,
    claiming_worker_settings,
    handled,
    pipeline_state,
    quiet,
    signature,
    until,
    vote,
)
from tests.reliability.tasks_files import FAILING_SUFFIX
from tests.support.redis_server import RedisServer
from tests.support.worker_process import WorkerPool, worker_pool
from worker.deadletter import DeadLetter

pytestmark = pytest.mark.slow

TASKS = "tests.reliability.tasks_files"
EVENTS = 2000
CONCURRENCY = 32
RATE = 200.0
"""Events started per second: the run lasts about EVENTS / RATE seconds, long enough for every fault."""
REDIS_DOWN_SECONDS = 1.0
QUIET_WITHIN = 120.0
"""Bound on recovery after the last event: a job whose worker was killed is re-run once arq's
in-progress mark expires (handler timeout 1 s + 2 s + 10 s), claims happen after 2 s idle."""
FIRST_USER = 300000000000000000
CLAIMED = re.compile(r"claimed (\d+) entries left pending")


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer at all (must never happen)
    entry_id: str | None = None
    retry_after: str | None = None
    error: str | None = None


@dataclass
class Figures:
    sent: int
    acknowledged: int
    refused_503: int
    other_answers: int
    stored: int
    stored_though_refused: int
    handled: int
    handler_runs: int
    reruns: int
    claimed: int
    duplicates: int
    dead_lettered: int
    dead_letters: int
    lost: int
    worker_kills: int
    redis_kills: int
    sending_seconds: float
    settling_seconds: float


@pytest.fixture
def chaos_redis(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory, appendonly=True, fsync="always")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def workers(chaos_redis: RedisServer, tmp_path: Path, handled_dir: Path) -> Iterator[WorkerPool]:
    with worker_pool(tmp_path, claiming_worker_settings(chaos_redis.url)) as pool:
        yield pool


@pytest.fixture
def edge(chaos_redis: RedisServer, tmp_path: Path) -> Iterator[EdgeProcess]:
    settings = {"redis_url": chaos_redis.url, "secret": SECRET, "log_level": "WARNING"}
    process = EdgeProcess(tmp_path, settings).start()
    yield process
    process.stop()


class Chaos:
    """The faults, run in a thread each so the sender never stalls on a process starting."""

    def __init__(self, redis_server: RedisServer, pool: WorkerPool) -> None:
        self.redis = redis_server
        self.pool = pool
        self.running = [pool.start(TASKS), pool.start(TASKS)]
        self.worker_kills = 0
        self.redis_kills = 0
        self.log: list[str] = []

    def replace(self, *indexes: int) -> None:
        for i in indexes:
            self.running[i].kill()  # kill -9
            self.worker_kills += 1
        for i in indexes:
            self.running[i] = self.pool.start(TASKS)
        self.log.append(f"killed -9 and replaced worker(s) {indexes}")

    def restart_redis(self) -> None:
        self.redis.kill()  # kill -9
        self.redis_kills += 1
        time.sleep(REDIS_DOWN_SECONDS)  # the outage itself
        self.redis.start()  # same port, same directory and append-only file
        self.log.append(f"killed -9 Redis, restarted it after {REDIS_DOWN_SECONDS}s")


async def send_all(base_url: str, chaos: Chaos) -> dict[int, Answer]:
    answers: dict[int, Answer] = {}
    faults = [
        (0.15, lambda: chaos.replace(0)),
        (0.35, chaos.restart_redis),
        (0.55, lambda: chaos.replace(1)),
        (0.75, lambda: chaos.replace(0, 1)),
    ]
    due = [(int(fraction * EVENTS), asyncio.Event()) for fraction, _ in faults]

    async def run_faults() -> None:
        for (_, reached), (_, fault) in zip(due, faults, strict=True):
            await reached.wait()
            await asyncio.to_thread(fault)

    slots = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(
        max_connections=CONCURRENCY,
        max_keepalive_connections=CONCURRENCY,
        keepalive_expiry=CLIENT_KEEPALIVE_SECONDS,
    )

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as http:

        async def send(user_id: int) -> None:
            body = vote(user_id)
            try:
                response = await http.post(
                    "/webhook", content=body, headers={"X-Sphere-Signature": signature(body)}
                )
            except httpx.HTTPError as exc:
                answers[user_id] = Answer(None, error=repr(exc))
            else:
                entry_id = response.json().get("id") if response.is_success else None
                answers[user_id] = Answer(response.status_code, entry_id, response.headers.get("retry-after"))
            finally:
                slots.release()

        faulting = asyncio.create_task(run_faults())
        tasks = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(EVENTS):
            await asyncio.sleep(max(0.0, start + i / RATE - loop.time()))  # pacing, not waiting for work
            await slots.acquire()
            tasks.append(asyncio.create_task(send(FIRST_USER + i)))
            for count, reached in due:
                if i + 1 >= count:
                    reached.set()
        await asyncio.gather(*tasks)
        await faulting
    return answers


def dead_letters(client: redis.Redis) -> list[DeadLetter]:
    return [DeadLetter.from_entry(i, f) for i, f in client.xrange(DEAD_STREAM)]


def user_of(letter: DeadLetter) -> str:
    return str(json.loads(letter.body)["user_id"])


def test_chaos_run_loses_no_acknowledged_event(
    chaos_redis: RedisServer, edge: EdgeProcess, workers: WorkerPool, handled_dir: Path
) -> None:
    started = time.monotonic()
    chaos = Chaos(chaos_redis, workers)
    answers = asyncio.run(send_all(edge.url, chaos))
    sent_at = time.monotonic()
    assert edge.running(), "the edge process died"
    # No worker exited on its own (Redis' restart included): each is running or was killed -9 by us.
    exits = {w.name: w.process.poll() for w in workers.started if w.process is not None}
    assert set(exits.values()) <= {None, -signal.SIGKILL}, f"{exits}\n" + "\n".join(
        w.log() for w in workers.started
    )

    client = redis.Redis.from_url(chaos_redis.url)
    acknowledged = {
        str(user): a for user, a in answers.items() if a.status is not None and 200 <= a.status < 300
    }

    def settled() -> bool:
        seen = {line.user_id for line in handled(handled_dir)}
        return quiet(pipeline_state(client)) and acknowledged.keys() <= seen

    try:
        until(settled, QUIET_WITHIN, "the pipeline settled with every acknowledged event handled", every=0.2)
    except AssertionError as exc:
        missing = sorted(acknowledged.keys() - {line.user_id for line in handled(handled_dir)})
        logs = "\n".join(f"--- {w.name}\n{w.log()[-5000:]}" for w in workers.started)
        raise AssertionError(f"{exc}; {len(missing)} missing, e.g. {missing[:5]}; "
                             f"{pipeline_state(client)}\n{logs}") from None  # fmt: skip

    settled_at = time.monotonic()
    lines = handled(handled_dir)
    letters = dead_letters(client)
    stored_users = {str(json.loads(f[b"body"])["user_id"]) for _, f in client.xrange("relay:events")}
    client.close()

    # Every request got an HTTP answer, and every answer was 2xx or 503.
    unanswered = {u: a.error for u, a in answers.items() if a.status is None}
    assert unanswered == {}, f"requests without an answer: {list(unanswered.items())[:5]}"
    statuses = Counter(a.status for a in answers.values())
    assert set(statuses) <= {202, 503}, f"answers other than 202 and 503: {statuses}"
    assert all(a.retry_after for a in answers.values() if a.status == 503)

    # Every acknowledged event was handled, under the entry id it was acknowledged with.
    runs_by_user: dict[str, set[str]] = {}
    for line in lines:
        runs_by_user.setdefault(line.user_id, set()).add(line.entry_id)
    for user, answer in acknowledged.items():
        assert runs_by_user.get(user) == {answer.entry_id}, (
            f"user {user}: {answer} vs {runs_by_user.get(user)}"
        )
    lost = len(acknowledged.keys() - runs_by_user.keys())
    assert lost == 0

    # Dead letters: only the failing handler's, only on purpose, and all of its acknowledged events.
    assert {(d.handler, d.error_type) for d in letters} <= {("refuse_sevens", "Permanent")}
    assert all(user_of(d).endswith(FAILING_SUFFIX) for d in letters)
    sevens = {user for user in acknowledged if user.endswith(FAILING_SUFFIX)}
    assert sevens <= {user_of(d) for d in letters}
    assert sevens, "the run must include events of the failing handler"

    runs = Counter(line.user_id for line in lines)
    figures = Figures(
        sent=len(answers),
        acknowledged=len(acknowledged),
        refused_503=statuses[503],
        other_answers=sum(n for status, n in statuses.items() if status not in (202, 503)),
        stored=len(stored_users),
        stored_though_refused=len({str(u) for u, a in answers.items() if a.status == 503} & stored_users),
        handled=len(runs),
        handler_runs=len(lines),
        reruns=sum(1 for line in lines if line.attempt > 1),
        claimed=sum(int(n) for w in workers.started for n in CLAIMED.findall(w.log())),
        duplicates=sum(n - 1 for n in runs.values()),
        dead_lettered=len({user_of(d) for d in letters}),
        dead_letters=len(letters),
        lost=lost,
        worker_kills=chaos.worker_kills,
        redis_kills=chaos.redis_kills,
        sending_seconds=round(sent_at - started, 1),
        settling_seconds=round(settled_at - sent_at, 1),
    )
    assert figures.worker_kills >= 2 and figures.redis_kills == 1
    assert figures.sent >= 2000
    print("\nchaos run:", "; ".join(chaos.log))
    print("chaos figures:", json.dumps(asdict(figures)))
