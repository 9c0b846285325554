"""worker.outcomes: each handler run leaves its latest outcome and counts in its minute, bounded."""

from __future__ import annotations

import pytest
from arq.worker import Retry
from redis.asyncio import Redis

from relay.core.events import ReviewAdd, VoteAdd
from relay.core.keys import minute_redis_key, outcome_redis_key
from relay.core.settings import Settings
from tests.worker.helpers import bridge_all, review_body, run_burst, store, vote_body
from worker import Context, Registry
from worker.bridge import Bridge
from worker.outcomes import MAX_ERROR_CHARS, MINUTE_KEEP_SECONDS, Outcome, outcome_of

pytestmark = pytest.mark.anyio


def registry() -> Registry:
    handlers = Registry()

    @handlers.on(VoteAdd)
    async def fine(ctx: Context, event: VoteAdd) -> None:
        pass

    @handlers.on(VoteAdd, max_attempts=2, backoff=0)
    async def flaky(ctx: Context, event: VoteAdd) -> None:
        if ctx["attempt"] == 1:
            raise ConnectionError("first try <fails>")

    @handlers.on(ReviewAdd, max_attempts=1)
    async def doomed(ctx: Context, event: ReviewAdd) -> None:
        raise RuntimeError("x" * 1000)

    return handlers


async def outcomes(redis: Redis, entry_id: str) -> dict[str, Outcome]:
    raw = await redis.hgetall(outcome_redis_key(entry_id))
    found = {name.decode(): Outcome.from_json(value) for name, value in raw.items()}
    return {name: outcome for name, outcome in found.items() if outcome is not None}


async def test_runs_leave_done_and_dead_with_the_dead_letter_id(redis: Redis, settings: Settings) -> None:
    handlers = registry()
    vote = await store(redis, vote_body())
    review = await store(redis, review_body())
    await bridge_all(Bridge(redis, handlers, settings))
    await run_burst(settings, handlers)  # its shutdown writes the outcomes still waiting

    voted = await outcomes(redis, vote)
    assert {name: o.state for name, o in voted.items()} == {"fine": "done", "flaky": "done"}
    assert voted["flaky"].attempt == 2
    [dead] = (await outcomes(redis, review)).values()
    assert dead.state == "dead" and dead.attempt == 1
    [(dead_id, _)] = await redis.xrange("relay:dead")
    assert dead.dead_id == dead_id.decode()
    ttl = await redis.pttl(outcome_redis_key(vote))
    assert 0 < ttl <= settings.retention_ms

    minute = dead.at_ms // 60_000
    counts = await redis.hgetall(minute_redis_key(minute))
    handled, failed = int(counts.get(b"handled", 0)), int(counts.get(b"failed", 0))
    assert (handled, failed) == (2, 2), "fine, flaky's 2nd try; flaky's 1st try, doomed"
    assert 0 < await redis.ttl(minute_redis_key(minute)) <= MINUTE_KEEP_SECONDS


def test_a_retry_records_when_and_why_clipped() -> None:
    try:
        try:
            raise ValueError("y" * 1000)
        except ValueError as exc:
            raise Retry(defer=2.5) from exc
    except Retry as retry:
        outcome = outcome_of("retry", now_ms=1000, attempt=3, retry=retry)
    assert outcome is not None and outcome.state == "retrying"
    assert outcome.retry_at_ms == 3500 and outcome.attempt == 3
    assert outcome.error.startswith("ValueError: yyy") and len(outcome.error) == MAX_ERROR_CHARS


def test_a_retry_the_handler_asked_for_records_the_handlers_reason() -> None:
    """A handler's ``raise Retry(defer=3) from reason`` is wrapped by the worker in its own Retry."""
    try:
        try:
            try:
                raise ConnectionError("HTTP 429: slow down")
            except ConnectionError as reason:
                raise Retry(defer=3) from reason
        except Retry as asked:
            raise Retry(defer=3) from asked
    except Retry as retry:
        outcome = outcome_of("retry", now_ms=1000, attempt=1, retry=retry)
    assert outcome is not None and outcome.error == "ConnectionError: HTTP 429: slow down"


def test_ends_that_say_nothing_record_nothing_and_damage_reads_as_none() -> None:
    assert outcome_of("error", now_ms=1, attempt=1, retry=None) is None
    skipped = outcome_of("skipped", now_ms=1, attempt=0, retry=None)
    assert skipped is not None and skipped.state == "waiting"
    for raw in [b"", b"[]", b'{"state": "exploded"}', b'{"state": "done", "at_ms": "soon"}', b"\xff"]:
        assert Outcome.from_json(raw) is None, raw
    assert Outcome.from_json(Outcome("done", 5).to_json()) == Outcome("done", 5)
