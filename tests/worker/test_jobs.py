"""One handler job per (event, handler): retries, timeouts, Permanent, dead letters, siblings, sync handlers.

Each test stores events as the edge does, steps the bridge once and drains arq in burst mode.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.worker import Retry
from redis.asyncio import Redis

from relay.core.events import Event, ReviewAdd, VoteAdd
from relay.core.keys import DEAD_STREAM, StoredEvent
from relay.core.settings import Settings
from tests.support.redis_server import free_port
from tests.worker.helpers import (
    bridge_all,
    dead_letters,
    review_body,
    run_burst,
    store,
    unknown_body,
    vote_body,
)
from worker import Context, Permanent, Registry
from worker.bridge import Bridge
from worker.jobs import UNRECORDED_RETRY_SECONDS, DeadLettered, run_attempt
from worker.keys import ARQ_QUEUE, failing_redis_key
from worker.main import Hooks

pytestmark = pytest.mark.anyio


class Runs:
    """What the handlers saw, in order."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def record(self, ctx: Context, event: Event) -> None:
        self.calls.append(
            {
                "handler": ctx["handler"],
                "event_id": ctx["event_id"],
                "attempt": ctx["attempt"],
                "event_type": ctx["event_type"],
                "model": type(event),
                "thread": threading.get_ident(),
            }
        )

    def of(self, handler: str) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["handler"] == handler]


async def dispatch_and_run(
    redis: Redis, settings: Settings, registry: Registry, hooks: Hooks | None = None
) -> None:
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry, hooks)


async def test_each_event_type_reaches_its_handler_with_its_model(redis: Redis, settings: Settings) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD")
    async def reward_voter(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)

    @registry.on(ReviewAdd)  # a model class stands for its event name
    async def log_review(ctx: Context, event: ReviewAdd) -> None:
        runs.record(ctx, event)

    vote_id = await store(redis, vote_body())
    review_id = await store(redis, review_body())
    await dispatch_and_run(redis, settings, registry)

    assert [(c["event_id"], c["model"], c["attempt"]) for c in runs.of("reward_voter")] == [
        (vote_id, VoteAdd, 1)
    ]
    assert [(c["event_id"], c["model"]) for c in runs.of("log_review")] == [(review_id, ReviewAdd)]
    assert await redis.zcard(ARQ_QUEUE) == 0


async def test_a_failing_handler_is_retried_until_it_succeeds(redis: Redis, settings: Settings) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD", max_attempts=5, backoff=0)
    async def flaky(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)
        if ctx["attempt"] < 3:
            raise ConnectionError("discord is down")

    entry_id = await store(redis, vote_body())
    await dispatch_and_run(redis, settings, registry)

    assert [c["attempt"] for c in runs.of("flaky")] == [1, 2, 3]
    assert {c["event_id"] for c in runs.calls} == {entry_id}  # stable across retries
    assert await dead_letters(redis) == []
    assert not await redis.exists(failing_redis_key(f"{entry_id}:flaky"))  # success forgets the failures


async def test_a_handler_that_always_fails_is_dead_lettered_after_max_attempts(
    redis: Redis, settings: Settings
) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD", max_attempts=3, backoff=0)
    async def broken(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)
        raise ValueError(f"no such role for user {event.user_id}")

    body = vote_body()
    entry_id = await store(redis, body)
    await dispatch_and_run(redis, settings, registry)

    assert [c["attempt"] for c in runs.calls] == [1, 2, 3]
    [letter] = await dead_letters(redis)
    assert letter.entry_id == entry_id
    assert letter.type == "VOTE_ADD"
    assert letter.body == body
    assert letter.handler == "broken"
    assert letter.attempts == 3
    assert letter.error_type == "ValueError"
    assert letter.error.startswith("no such role for user ")
    assert "Traceback" in letter.traceback and "raise ValueError" in letter.traceback
    assert 0 < letter.first_failure_ms <= letter.last_failure_ms
    assert letter.received_ms > 0
    assert await redis.zcard(ARQ_QUEUE) == 0
    assert not await redis.exists(failing_redis_key(f"{entry_id}:broken"))


async def test_permanent_dead_letters_at_once(redis: Redis, settings: Settings) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD", max_attempts=5, backoff=0)
    async def refuse(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)
        raise Permanent(f"guild {event.guild_id} is not configured")

    await store(redis, vote_body())
    await dispatch_and_run(redis, settings, registry)

    assert len(runs.calls) == 1
    [letter] = await dead_letters(redis)
    assert (letter.error_type, letter.error, letter.attempts) == (
        "Permanent",
        "guild 111111111111111111 is not configured",
        1,
    )
    assert letter.first_failure_ms == letter.last_failure_ms


async def test_a_timeout_is_a_failed_attempt(redis: Redis, settings: Settings) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD", max_attempts=2, backoff=0, timeout=0.2)
    async def hangs(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)
        await asyncio.Event().wait()  # never set: only the timeout ends it

    await store(redis, vote_body())
    await dispatch_and_run(redis, settings, registry)

    assert [c["attempt"] for c in runs.calls] == [1, 2]
    [letter] = await dead_letters(redis)
    assert letter.error_type == "TimeoutError"
    assert letter.error == "ran longer than its timeout of 0.2s"
    assert letter.attempts == 2


async def test_a_failing_handler_never_reruns_its_siblings(redis: Redis, settings: Settings) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD")
    async def steady(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)

    @registry.on("VOTE_ADD", max_attempts=4, backoff=0)
    async def failing(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)
        raise RuntimeError("always")

    await store(redis, vote_body())
    await dispatch_and_run(redis, settings, registry)

    assert len(runs.of("steady")) == 1
    assert len(runs.of("failing")) == 4
    assert [letter.handler for letter in await dead_letters(redis)] == ["failing"]


async def test_unknown_types_reach_the_wildcard_handler_as_a_base_event(
    redis: Redis, settings: Settings
) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD")
    async def votes_only(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)

    extras = {}

    @registry.on("*", backoff=0)
    async def everything(ctx: Context, event: Event) -> None:
        runs.record(ctx, event)
        extras[ctx["event_id"]] = event.model_extra

    body = unknown_body()
    boost_id = await store(redis, body)
    vote_id = await store(redis, vote_body())
    await dispatch_and_run(redis, settings, registry)

    # Sorted: workers take due jobs from a random place in the queue (worker/connection.py).
    assert sorted((c["event_id"], c["event_type"], c["model"]) for c in runs.of("everything")) == [
        (boost_id, "GUILD_BOOST", Event),
        (vote_id, "VOTE_ADD", VoteAdd),
    ]
    assert [c["event_id"] for c in runs.of("votes_only")] == [vote_id]
    assert extras[boost_id] == {key: value for key, value in json.loads(body).items() if key != "event"}
    assert await dead_letters(redis) == []


async def test_a_plain_def_handler_runs_in_a_thread(redis: Redis, settings: Settings) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD", max_attempts=2, backoff=0)
    def blocking(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)
        if ctx["attempt"] == 1:
            raise OSError("sync failure is retried like any other")

    await store(redis, vote_body())
    await dispatch_and_run(redis, settings, registry)

    assert [c["attempt"] for c in runs.calls] == [1, 2]
    assert all(c["thread"] != threading.get_ident() for c in runs.calls)
    assert await dead_letters(redis) == []


async def test_startup_and_shutdown_hooks_are_called_and_share_the_context(
    redis: Redis, settings: Settings
) -> None:
    registry, seen = Registry(), []
    calls: list[str] = []

    async def startup(ctx: dict[str, Any]) -> None:
        calls.append("startup")
        ctx["greeting"] = "opened once"

    def shutdown(ctx: dict[str, Any]) -> None:  # plain functions work too
        calls.append(f"shutdown:{ctx['greeting']}")

    @registry.on("VOTE_ADD")
    async def uses_client(ctx: Any, event: VoteAdd) -> None:
        seen.append((ctx["greeting"], ctx["settings"] is settings))

    await store(redis, vote_body())
    await dispatch_and_run(redis, settings, registry, Hooks(startup=startup, shutdown=shutdown))

    assert calls == ["startup", "shutdown:opened once"]
    assert seen == [("opened once", True)]


async def test_a_body_that_no_longer_parses_is_dead_lettered_without_running(
    redis: Redis, settings: Settings
) -> None:
    registry, runs = Registry(), Runs()

    @registry.on("VOTE_ADD")
    async def reward_voter(ctx: Context, event: VoteAdd) -> None:
        runs.record(ctx, event)

    # Written by something other than the edge: a VOTE_ADD whose user id is not a snowflake.
    await redis.xadd(
        "relay:events",
        {
            "type": "VOTE_ADD",
            "body": b'{"event":"VOTE_ADD","guild_id":"1","user_id":7}',
            "received_ms": 1,
            "dedupe": "x",
        },
    )
    await dispatch_and_run(redis, settings, registry)

    assert runs.calls == []
    [letter] = await dead_letters(redis)
    assert (letter.handler, letter.error_type, letter.attempts) == ("reward_voter", "InvalidEvent", 1)
    assert "user_id" in letter.error


# -- one attempt, stepped by hand: what it returns, and Redis failing its bookkeeping -------------


def attempts_registry() -> Registry:
    registry = Registry()

    @registry.on(VoteAdd, max_attempts=3, backoff=0)
    async def flaky(ctx: Context, event: VoteAdd) -> None:
        raise RuntimeError("not yet")

    @registry.on(VoteAdd)
    async def doomed(ctx: Context, event: VoteAdd) -> None:
        raise Permanent("no such user")

    return registry


async def attempt(redis: Redis, settings: Settings, name: str, job_try: int = 1) -> DeadLettered | None:
    """One attempt of handler `name` for a vote stored as entry 1-0, as arq's `job_try` run."""
    handler = attempts_registry().get(name)
    assert handler is not None
    ctx: dict[str, object] = {"redis": redis, "job_try": job_try, "job_id": f"1-0:{name}"}
    return await run_attempt(handler, settings, ctx, StoredEvent("1-0", "VOTE_ADD", vote_body(), 1, ""))


async def test_an_attempt_that_dead_letters_returns_the_letter_it_wrote(
    redis: Redis, settings: Settings
) -> None:
    dead = await attempt(redis, settings, "doomed")

    [(dead_id, fields)] = await redis.xrange(DEAD_STREAM)
    assert dead == DeadLettered(dead_id.decode())
    assert (fields[b"handler"], fields[b"error_type"]) == (b"doomed", b"Permanent")


@pytest.fixture
async def unreachable() -> AsyncIterator[Redis]:
    """A client of a Redis that is not there: every call fails at once with ConnectionError."""
    client = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    yield client
    await client.aclose()


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (record.levelno, record.getMessage().partition(": ConnectionError")[0]) for record in caplog.records
    ]


async def test_a_dead_letter_redis_cannot_take_leaves_the_job_queued(
    unreachable: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="worker.jobs"), pytest.raises(Retry) as retried:
        await attempt(unreachable, settings, "doomed")

    assert retried.value.defer_score == UNRECORDED_RETRY_SECONDS * 1000
    assert logged(caplog) == [(logging.ERROR, "could not write the dead letter, the job stays queued")]


async def test_skipped_runs_redis_cannot_count_leave_the_job_queued(
    unreachable: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="worker.jobs"), pytest.raises(Retry) as retried:
        await attempt(unreachable, settings, "flaky", job_try=2)  # a second run reads the skips first

    assert retried.value.defer_score == UNRECORDED_RETRY_SECONDS * 1000
    assert logged(caplog) == [
        (logging.WARNING, "could not read the runs skipped for want of the handler, the job stays queued")
    ]


async def test_a_failure_time_redis_cannot_record_does_not_hold_up_the_retry(
    unreachable: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="worker.jobs"), pytest.raises(Retry) as retried:
        await attempt(unreachable, settings, "flaky")

    assert retried.value.defer_score == 0  # the handler's own backoff, not the wait for Redis
    assert isinstance(retried.value.__cause__, RuntimeError)
    assert logged(caplog) == [
        (logging.WARNING, "flaky failed on 1-0 (attempt 1 of 3), retrying in 0.00s: RuntimeError: not yet"),
        (logging.WARNING, "could not record the first failure time"),
    ]
