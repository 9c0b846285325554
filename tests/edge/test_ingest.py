"""The batched ingest writer against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relay.core.keys import EVENTS_STREAM, INGEST_SCRIPT, StoredEvent, dedupe_redis_key
from relay.edge.errors import RedisUnavailable
from relay.edge.ingest import INGEST_SHA, IngestWriter
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def writer(redis: aioredis.Redis) -> AsyncIterator[IngestWriter]:
    ingest = IngestWriter(redis, dedupe_seconds=60, timeout=2.0)
    yield ingest
    await ingest.close()


async def test_the_script_digest_is_the_one_redis_computes(redis: aioredis.Redis) -> None:
    assert await redis.script_load(INGEST_SCRIPT) == INGEST_SHA


async def test_a_new_event_is_appended_with_every_field(writer: IngestWriter, redis: aioredis.Redis) -> None:
    is_new, entry_id = await writer.write("sha256:abc", "VOTE_ADD", b'{"raw": "body"}', 1700000000123)

    assert is_new
    [(stored_id, fields)] = await redis.xrange(EVENTS_STREAM)
    assert stored_id == entry_id
    event = StoredEvent.from_entry(stored_id, fields)
    assert (event.type, event.body, event.received_ms, event.dedupe) == (
        "VOTE_ADD",
        b'{"raw": "body"}',
        1700000000123,
        "sha256:abc",
    )


async def test_a_repeat_within_the_window_returns_the_first_id(
    writer: IngestWriter, redis: aioredis.Redis
) -> None:
    first = await writer.write("review:1", "REVIEW_ADD", b"one", 1)
    again = await writer.write("review:1", "REVIEW_ADD", b"two", 2)

    assert first == (True, first[1])
    assert again == (False, first[1])
    assert await redis.xlen(EVENTS_STREAM) == 1
    assert 0 < await redis.ttl(dedupe_redis_key("review:1")) <= 60


async def test_concurrent_writes_dedupe_among_themselves(writer: IngestWriter, redis: aioredis.Redis) -> None:
    results = await asyncio.gather(
        *(writer.write(f"k{n % 10}", "VOTE_ADD", b"%d" % (n % 10), n) for n in range(100))
    )

    assert sum(is_new for is_new, _ in results) == 10
    assert await redis.xlen(EVENTS_STREAM) == 10
    by_key: dict[int, set[bytes]] = {}
    for n, (_, entry_id) in enumerate(results):
        by_key.setdefault(n % 10, set()).add(entry_id)
    assert all(len(ids) == 1 for ids in by_key.values())


async def test_concurrent_writes_go_out_together_on_one_connection(
    redis_url: str, redis: aioredis.Redis
) -> None:
    # One request per connection would open up to 100 here; one batched flush needs one.
    client = aioredis.Redis.from_url(redis_url, client_name="batched-writer")
    writer = IngestWriter(client, dedupe_seconds=60, timeout=2.0)
    try:
        await asyncio.gather(*(writer.write(f"k{n}", "VOTE_ADD", b"x", n) for n in range(100)))
    finally:
        await writer.close()
    try:
        clients = await redis.client_list()
        assert sum(1 for c in clients if c["name"] == "batched-writer") == 1
    finally:
        await client.aclose()
    assert await redis.xlen(EVENTS_STREAM) == 100


async def test_a_batch_is_one_round_trip_once_the_script_is_cached(own_redis: RedisServer) -> None:
    # Why the writer packs its own EVALSHA calls rather than using redis-py's `register_script`:
    # a registered script in a pipeline sends SCRIPT EXISTS before the batch, a second round trip.
    client, probe = aioredis.Redis.from_url(own_redis.url), aioredis.Redis.from_url(own_redis.url)
    writer = IngestWriter(client, dedupe_seconds=60, timeout=2.0)
    try:
        await writer.write("warm", "VOTE_ADD", b"w", 0)  # loads the script, opens the connection
        before = (await probe.info("stats"))["total_reads_processed"]

        await asyncio.gather(*(writer.write(f"k{n}", "VOTE_ADD", b"x", n) for n in range(20)))

        # one read for the whole batch, one for the INFO that counts it
        assert (await probe.info("stats"))["total_reads_processed"] - before == 2
        assert await probe.xlen(EVENTS_STREAM) == 21
    finally:
        await writer.close()
        await client.aclose()
        await probe.aclose()


async def test_an_empty_script_cache_is_refilled(writer: IngestWriter, redis: aioredis.Redis) -> None:
    await writer.write("a", "VOTE_ADD", b"a", 1)
    await redis.script_flush()  # what a Redis restart does

    is_new, _ = await writer.write("b", "VOTE_ADD", b"b", 2)

    assert is_new
    assert await redis.xlen(EVENTS_STREAM) == 2
    assert await redis.script_exists(INGEST_SHA) == [True]


async def test_unreachable_redis_raises_redis_unavailable() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    writer = IngestWriter(client, dedupe_seconds=60, timeout=1.0)
    try:
        results = await asyncio.gather(
            *(writer.write(f"k{n}", "VOTE_ADD", b"x", n) for n in range(3)), return_exceptions=True
        )
    finally:
        await writer.close()
        await client.aclose()

    assert all(isinstance(result, RedisUnavailable) for result in results), results


async def test_a_stalled_redis_is_bounded_by_the_timeout(own_redis: RedisServer) -> None:
    client = aioredis.Redis.from_url(own_redis.url)
    writer = IngestWriter(client, dedupe_seconds=60, timeout=0.3)
    await writer.write("warm", "VOTE_ADD", b"x", 0)  # connect before the stall
    own_redis.pause()
    try:
        with pytest.raises(RedisUnavailable):
            await writer.write("stalled", "VOTE_ADD", b"x", 1)
    finally:
        own_redis.resume()
    try:
        is_new, _ = await writer.write("after", "VOTE_ADD", b"x", 2)
        assert is_new
    finally:
        await writer.close()
        await client.aclose()


async def test_events_queued_behind_a_stalled_flush_are_refused_too(own_redis: RedisServer) -> None:
    client = aioredis.Redis.from_url(own_redis.url)
    writer = IngestWriter(client, dedupe_seconds=60, timeout=0.3, max_flushes=1)
    await writer.write("warm", "VOTE_ADD", b"x", 0)
    own_redis.pause()
    try:
        first = asyncio.ensure_future(writer.write("first", "VOTE_ADD", b"x", 1))
        await asyncio.sleep(0)  # let the only flush take `first` and stall on it
        queued = asyncio.ensure_future(writer.write("queued", "VOTE_ADD", b"x", 2))
        results = await asyncio.gather(first, queued, return_exceptions=True)
    finally:
        own_redis.resume()
    try:
        assert all(isinstance(result, RedisUnavailable) for result in results), results
        assert (await writer.write("after", "VOTE_ADD", b"x", 3))[0]
    finally:
        await writer.close()
        await client.aclose()


async def test_an_error_reply_refuses_only_its_own_event(writer: IngestWriter, redis: aioredis.Redis) -> None:
    # One batch, two events; a dedupe key held as a hash makes GET fail for one of them alone.
    await redis.hset(dedupe_redis_key("broken"), "x", "y")  # type: ignore[misc]

    good, bad = await asyncio.gather(
        writer.write("fine", "VOTE_ADD", b"ok", 1),
        writer.write("broken", "VOTE_ADD", b"no", 2),
        return_exceptions=True,
    )

    assert isinstance(good, tuple) and good[0] is True
    assert isinstance(bad, RedisUnavailable)
    assert await redis.xlen(EVENTS_STREAM) == 1


async def test_a_closed_writer_refuses(redis: aioredis.Redis) -> None:
    writer = IngestWriter(redis, dedupe_seconds=60, timeout=1.0)
    await writer.close()

    with pytest.raises(RedisUnavailable):
        await writer.write("k", "VOTE_ADD", b"x", 0)
