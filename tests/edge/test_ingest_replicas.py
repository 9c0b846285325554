"""RELAY_MIN_REPLICAS: the ingest batch ends with WAIT in the same write; too few replicas is a 503.

Real servers: a primary alone (nobody confirms), then a replica attached to it (one confirms).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from relay.core.keys import EVENTS_STREAM
from relay.edge.errors import RETRY_AFTER_SECONDS, RedisUnavailable
from relay.edge.ingest import IngestWriter
from tests.reliability.support import EdgeProcess, vote
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

SECRET = "k7Qm2vX9pL4rT8wZ3nB6yH1c"


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "primary")
    server.directory.mkdir()
    server.start()
    yield server
    server.kill()


def attach_replica(primary: RedisServer, directory: Path) -> RedisServer:
    directory.mkdir()
    replica = RedisServer(directory)
    replica.start()
    client = redis.Redis(host="127.0.0.1", port=replica.port)
    watch = redis.Redis(host="127.0.0.1", port=primary.port)
    try:
        client.replicaof("127.0.0.1", primary.port)
        deadline = time.monotonic() + 20
        while watch.info("replication").get("slave0", {}).get("state") != "online":
            assert time.monotonic() < deadline, "the replica did not come online"
            time.sleep(0.02)
    finally:
        client.close()
        watch.close()
    return replica


@pytest.fixture
async def client(primary: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis_client = aioredis.Redis.from_url(primary.url)
    yield redis_client
    await redis_client.aclose()


async def test_too_few_replicas_is_unavailable_yet_the_event_is_on_the_primary_and_its_redelivery_a_duplicate(
    primary: RedisServer, client: aioredis.Redis, tmp_path: Path
) -> None:
    errors: list[str] = []

    def writer(replica_timeout: float) -> IngestWriter:
        return IngestWriter(
            client,
            dedupe_seconds=60,
            timeout=replica_timeout + 2,
            min_replicas=1,
            replica_timeout=replica_timeout,
            on_redis_error=errors.append,
        )

    alone = writer(0.1)  # no replica: nobody can confirm, however long it waits
    try:
        with pytest.raises(RedisUnavailable, match="0 of 1 replica"):
            await alone.write("delivery-1", "VOTE_ADD", b"{}", 1)
    finally:
        await alone.close()
    assert errors == ["replicas"]
    [(stored_id, _)] = await client.xrange(EVENTS_STREAM)  # the primary has it

    replica = attach_replica(primary, tmp_path / "replica")
    replicated = writer(5.0)  # generous: the replica's confirmation waits on a busy machine's scheduler
    try:
        is_new, entry_id = await replicated.write("delivery-1", "VOTE_ADD", b"{}", 1)  # Sphere's redelivery
        assert (is_new, entry_id) == (False, stored_id)
        is_new, _ = await replicated.write("delivery-2", "VOTE_ADD", b"{}", 2)
        assert is_new
        assert errors == ["replicas"]  # nothing refused once a replica confirms
    finally:
        await replicated.close()
        replica.kill()


async def test_without_min_replicas_no_wait_is_sent(client: aioredis.Redis) -> None:
    writer = IngestWriter(client, dedupe_seconds=60, timeout=2.0)
    try:
        before = int((await client.info("commandstats")).get("cmdstat_wait", {}).get("calls", 0))
        assert (await writer.write("delivery-3", "VOTE_ADD", b"{}", 3))[0]
        after = int((await client.info("commandstats")).get("cmdstat_wait", {}).get("calls", 0))
        assert after == before
    finally:
        await writer.close()


def test_the_edge_answers_503_with_retry_after_when_no_replica_confirms(
    primary: RedisServer, tmp_path: Path
) -> None:
    settings = {"redis_url": primary.url, "secret": SECRET, "min_replicas": "1", "replica_timeout": "0.1"}
    edge = EdgeProcess(tmp_path, settings).start()
    try:
        body = vote(424242)
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        answer = httpx.post(
            f"{edge.url}/webhook", content=body, headers={"X-Sphere-Signature": signature}, timeout=5
        )
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert httpx.get(f"{edge.url}/readyz", timeout=5).status_code == 503  # no replica connected
        assert "too few replicas" in edge.log()
    finally:
        edge.stop()
