"""The bridge: stream entries become arq jobs, acknowledged only together with their jobs."""

from __future__ import annotations

import asyncio
import time

import pytest
from arq.constants import job_key_prefix
from arq.utils import timestamp_ms
from redis.asyncio import Redis

from relay.core.events import VoteAdd
from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM
from relay.core.settings import Settings
from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from tests.worker.helpers import (
    arq_claim,
    arq_poll,
    bridge_all,
    dead_letters,
    eventually,
    run_burst,
    store,
    unknown_body,
    vote_body,
)
from worker import Context, Registry
from worker.bridge import Bridge, BridgeOptions
from worker.connection import worker_redis
from worker.heartbeat import HeartbeatWriter, InFlight
from worker.keys import ARQ_QUEUE

pytestmark = pytest.mark.anyio


def votes_registry() -> Registry:
    registry = Registry()

    @registry.on("VOTE_ADD")
    async def reward_voter(ctx: Context, event: VoteAdd) -> None:
        pass

    @registry.on("VOTE_ADD")
    async def count_vote(ctx: Context, event: VoteAdd) -> None:
        pass

    return registry


async def queued_ids(redis: Redis) -> set[str]:
    return {member.decode() for member in await redis.zrange(ARQ_QUEUE, 0, -1)}


async def pending(redis: Redis) -> int:
    return int((await redis.xpending(EVENTS_STREAM, CONSUMER_GROUP))["pending"])


async def test_entries_stored_before_any_worker_ran_become_one_job_per_handler(
    redis: Redis, settings: Settings
) -> None:
    first, second = await store(redis, vote_body()), await store(redis, vote_body())
    bridge = Bridge(redis, votes_registry(), settings)

    result = await bridge_all(bridge)

    assert (result.entries, result.jobs) == (2, 4)
    assert await queued_ids(redis) == {
        f"{entry}:{handler}" for entry in (first, second) for handler in ("reward_voter", "count_vote")
    }
    assert await pending(redis) == 0  # acknowledged, with their jobs in place


async def test_group_creation_is_idempotent_and_keeps_the_position(redis: Redis, settings: Settings) -> None:
    bridge = Bridge(redis, votes_registry(), settings)
    await store(redis, vote_body())
    await bridge.ensure_group()
    await bridge_all(bridge)
    await bridge.ensure_group()  # a second worker starting up
    await Bridge(redis, votes_registry(), settings).ensure_group()

    assert (await bridge.step()).entries == 0  # nothing is read twice


async def test_an_entry_without_handler_is_acknowledged_and_counted(redis: Redis, settings: Settings) -> None:
    await store(redis, unknown_body())
    bridge = Bridge(redis, votes_registry(), settings)

    result = await bridge.step()

    assert (result.entries, result.jobs, result.unhandled) == (1, 0, 1)
    assert bridge.stats.unhandled == 1
    assert await pending(redis) == 0
    assert await redis.zcard(ARQ_QUEUE) == 0


async def test_an_entry_moved_twice_never_makes_a_second_job(redis: Redis, settings: Settings) -> None:
    registry = votes_registry()
    await store(redis, vote_body())
    [(_stream, entries)] = await redis.xread({EVENTS_STREAM: "0"})
    bridge = Bridge(redis, registry, settings)
    await bridge.ensure_group()

    await bridge.dispatch(entries)
    await bridge.dispatch(entries)  # e.g. claimed again from a consumer that died before its XACK
    assert await redis.zcard(ARQ_QUEUE) == 2

    await run_burst(settings, registry)  # the jobs finish; their results remain for a while
    await bridge.dispatch(entries)
    assert await redis.zcard(ARQ_QUEUE) == 0


async def test_nothing_is_acknowledged_when_its_jobs_cannot_be_enqueued(
    redis: Redis, settings: Settings
) -> None:
    entry_id = await store(redis, vote_body())
    await redis.set(ARQ_QUEUE, "not a sorted set")  # every ZADD now fails, halfway through the script
    bridge = Bridge(redis, votes_registry(), settings)

    with pytest.raises(Exception, match="WRONGTYPE"):
        await bridge.step()
    assert await pending(redis) == 1

    await redis.delete(ARQ_QUEUE)
    assert await bridge.claim(min_idle_ms=0) == 1  # the job key the failed script left is no obstacle
    assert await queued_ids(redis) == {f"{entry_id}:reward_voter", f"{entry_id}:count_vote"}
    assert await pending(redis) == 0


async def test_entries_left_pending_by_a_dead_consumer_are_claimed(redis: Redis, settings: Settings) -> None:
    entry_id = await store(redis, vote_body())
    bridge = Bridge(redis, votes_registry(), settings)
    await bridge.ensure_group()
    await redis.xreadgroup(CONSUMER_GROUP, "dead-worker", {EVENTS_STREAM: ">"})  # read, never acknowledged

    assert await bridge.claim() == 0  # not idle for claim_idle_seconds yet
    assert await bridge.claim(min_idle_ms=0) == 1

    assert await queued_ids(redis) == {f"{entry_id}:reward_voter", f"{entry_id}:count_vote"}
    assert await pending(redis) == 0
    assert bridge.stats.claimed == 1


async def test_a_malformed_entry_is_dead_lettered_and_acknowledged(redis: Redis, settings: Settings) -> None:
    await redis.xadd(EVENTS_STREAM, {"type": "VOTE_ADD", "body": b"{}"})  # no received_ms, no dedupe
    bridge = Bridge(redis, votes_registry(), settings)

    await bridge.step()

    [letter] = await dead_letters(redis)
    assert (letter.handler, letter.error_type, letter.type) == ("", "MalformedEntry", "VOTE_ADD")
    assert await pending(redis) == 0
    assert await redis.zcard(ARQ_QUEUE) == 0


async def test_a_full_queue_stops_reading_and_retries_do_not_count(redis: Redis, settings: Settings) -> None:
    options = BridgeOptions(high_water=2, read_count=1, block_ms=50)
    bridge = Bridge(redis, votes_registry(), settings, options=options)
    assert not await bridge.queue_is_full()
    await redis.zadd(ARQ_QUEUE, {"a-retry-due-in-an-hour": time.time() * 1000 + 3_600_000})
    assert not await bridge.queue_is_full()

    for _ in range(5):
        await store(redis, vote_body())
    task = asyncio.create_task(bridge.run())
    await eventually(lambda: bridge.queue_is_full())
    # Nobody drains the queue, so the bridge must not read past the entry that filled it.
    await eventually(lambda: _group_entries_read(redis, 1))
    bridge.stop()
    await task

    assert await _entries_read(redis) == 1
    assert await redis.xlen(EVENTS_STREAM) == 5  # the rest waits in the stream


async def _entries_read(redis: Redis) -> int:
    [group] = await redis.xinfo_groups(EVENTS_STREAM)
    return int(group["entries-read"] or 0)


async def _group_entries_read(redis: Redis, count: int) -> bool:
    return await _entries_read(redis) == count


async def test_run_stops_promptly_and_leaves_the_group(redis: Redis, settings: Settings) -> None:
    bridge = Bridge(redis, votes_registry(), settings, options=BridgeOptions(block_ms=100))
    task = asyncio.create_task(bridge.run())
    await eventually(lambda: _has_consumer(redis, bridge.consumer))
    bridge.stop()
    await asyncio.wait_for(task, 5)
    await bridge.close()

    assert not await _has_consumer(redis, bridge.consumer)


async def _has_consumer(redis: Redis, name: str) -> bool:
    if not await redis.exists(EVENTS_STREAM):
        return False
    consumers = await redis.xinfo_consumers(EVENTS_STREAM, CONSUMER_GROUP)
    return any(c["name"].decode() == name for c in consumers)


async def test_consumers_of_stopped_workers_are_forgotten_unless_they_hold_entries_or_beat(
    redis: Redis, settings: Settings
) -> None:
    quick = settings.model_copy(update={"claim_idle_seconds": 0.05})
    bridge = Bridge(redis, votes_registry(), quick)
    await bridge.ensure_group()
    for name in ("idle-dead-worker", "idle-live-worker"):
        await redis.xgroup_createconsumer(EVENTS_STREAM, CONSUMER_GROUP, name)
    await HeartbeatWriter(redis, "idle-live-worker", InFlight()).beat()
    await store(redis, vote_body())
    await redis.xreadgroup(CONSUMER_GROUP, "dead-worker-with-entries", {EVENTS_STREAM: ">"})
    await asyncio.sleep(0.1)  # every consumer is now idle past the claim-idle time
    await redis.xgroup_createconsumer(EVENTS_STREAM, CONSUMER_GROUP, "worker-just-started")

    assert await bridge.forget_idle_consumers() == 1

    assert not await _has_consumer(redis, "idle-dead-worker")
    for kept in ("idle-live-worker", "worker-just-started", "dead-worker-with-entries", bridge.consumer):
        assert await _has_consumer(redis, kept), kept
    assert await pending(redis) == 1


@pytest.mark.slow
async def test_the_bridge_survives_redis_going_away(own_redis: RedisServer) -> None:
    settings = make_settings(own_redis.url)
    client = Redis.from_url(own_redis.url)
    bridge = Bridge(client, votes_registry(), settings, options=BridgeOptions(block_ms=100))
    try:
        task = asyncio.create_task(bridge.run())
        await eventually(lambda: _has_consumer(client, bridge.consumer))
        own_redis.kill()
        await eventually(lambda: _true(bridge.stats.errors >= 2))
        own_redis.start()

        entry_id = await store(client, vote_body())
        await eventually(lambda: _is_queued(client, f"{entry_id}:reward_voter"))
        assert not task.done()
        bridge.stop()
        await asyncio.wait_for(task, 5)
    finally:
        await client.aclose()


async def _true(value: bool) -> bool:
    return value


async def _is_queued(redis: Redis, job_id: str) -> bool:
    return await redis.zscore(ARQ_QUEUE, job_id) is not None and bool(
        await redis.exists(job_key_prefix + job_id)
    )


async def test_the_workers_client_tries_the_jobs_its_own_bridge_queued_first(
    redis: Redis, settings: Settings
) -> None:
    client = worker_redis(settings, queue=ARQ_QUEUE, expires_extra_ms=1000)
    try:
        entry = await store(redis, vote_body())
        await redis.zadd(ARQ_QUEUE, {"another-workers-job": 1})
        await bridge_all(Bridge(client, votes_registry(), settings))

        mine = {f"{entry}:count_vote", f"{entry}:reward_voter"}
        assert set(client.claims.mine) == mine
        # arq 0.28's poll (Worker._poll_iteration), with arq's clock: jobs are scored with arq's
        # rounded milliseconds, which can be up to half a millisecond ahead of time.time() * 1000
        order = await client.zrangebyscore(ARQ_QUEUE, min=float("-inf"), max=timestamp_ms(), start=0, num=500)
        assert {job.decode() for job in order[:2]} == mine
        assert order[2:] == [b"another-workers-job"]
    finally:
        await client.aclose()


async def test_each_bridge_reads_only_what_its_own_worker_can_start_soon(
    redis: Redis, settings: Settings
) -> None:
    """A burst is shared: a bridge holds at most ``own_jobs`` jobs its worker has not taken, and reads
    more as its worker takes them (with one bridge reading the whole burst, the other workers would
    wait a second before stealing its jobs)."""
    options = BridgeOptions(own_jobs=4, block_ms=50)  # 2 entries: each vote is a job for 2 handlers
    clients = [worker_redis(settings, queue=ARQ_QUEUE, expires_extra_ms=1000) for _ in range(2)]
    bridges = [Bridge(client, votes_registry(), settings, options=options) for client in clients]
    tasks: list[asyncio.Task[None]] = []
    try:
        for _ in range(10):
            await store(redis, vote_body())
        await bridges[0].ensure_group()
        tasks = [asyncio.create_task(bridge.run()) for bridge in bridges]
        await eventually(lambda: _group_entries_read(redis, 4))
        await asyncio.sleep(0.3)  # more reads would come now; none must
        assert await _entries_read(redis) == 4
        assert [len(client.claims.waiting) for client in clients] == [4, 4]
        assert await redis.zcard(ARQ_QUEUE) == 8

        first, taker = clients[0], bridges[0]
        # arq's poll lists its own jobs (the other bridge's are not due a second yet)
        assert set(await arq_poll(first, now=timestamp_ms())) == set(first.claims.waiting)
        for job in list(first.claims.waiting)[:2]:
            assert (await arq_claim(first, job))[0]  # arq's claim: the worker took the job
        await eventually(lambda: _group_entries_read(redis, 5))  # room for one more vote's 2 jobs
        assert taker.stats.entries == 3 and bridges[1].stats.entries == 2
        assert len(first.claims.waiting) == 4
    finally:
        for bridge in bridges:
            bridge.stop()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.aclose()
