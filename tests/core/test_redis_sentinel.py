"""Clients from the factory, configured through RELAY_REDIS_SENTINELS, follow a failover without being
made again: real primary, replicas and Sentinels; the primary is killed with -9."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from relay.core.redis import async_client, check, describe, sync_client
from relay.core.settings import Settings
from tests.reliability.support import until
from tests.support.sentinel import SentinelSetup

pytestmark = pytest.mark.slow

SECRET = "k7Qm2vX9pL4rT8wZ3nB6yH1c"


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(tmp_path, replicas=1).start()
    yield setup
    setup.stop()


def settings(setup: SentinelSetup) -> Settings:
    # The URL's host and port point nowhere: with Sentinels, only its db and options count.
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        secret=SECRET,
        redis_url="redis://127.0.0.1:1/0",
        redis_sentinels=setup.sentinel_setting(),  # type: ignore[arg-type]
    )


def test_the_blocking_client_follows_a_failover(sentinels: SentinelSetup) -> None:
    client = sync_client(settings(sentinels), socket_timeout=2)
    try:
        client.set("before", b"1")
        sentinels.wait_replicas(1)
        assert client.wait(1, 1000) == 1
        old = sentinels.primary
        old.kill()
        new = sentinels.wait_promotion(old)

        def write() -> bool:
            try:
                return bool(client.set("after", b"2"))
            except redis.ConnectionError:
                return False

        until(write, 20, "a write through the same client after the failover", every=0.1)
        assert client.get("before") == b"1"
        direct = new.client()
        try:
            assert direct.get("after") == b"2"  # it went to the new primary
        finally:
            direct.close()
    finally:
        client.close()


@pytest.mark.anyio
async def test_the_asyncio_client_finds_the_primary_through_the_sentinels(sentinels: SentinelSetup) -> None:
    client = async_client(settings(sentinels))
    try:
        await client.set("k", b"v")
        assert (await client.info("replication"))["role"] == "master"
    finally:
        await client.aclose()
    assert check(settings(sentinels)) is None
    assert describe(settings(sentinels)).startswith("mymaster via sentinels 127.0.0.1:")


def test_sentinels_with_a_password_of_their_own(tmp_path: Path) -> None:
    password = "Sn7wQ2pL9vX4kT8mR3bY"
    setup = SentinelSetup(tmp_path, replicas=1, sentinel_password=password).start()
    try:
        with_password = settings(setup).model_copy(update={"redis_sentinel_password": SecretStr(password)})
        assert check(with_password) is None
        client = sync_client(with_password)
        try:
            assert client.set("k", b"v")
        finally:
            client.close()
        without = check(settings(setup))
        assert without is not None and (without.kind, without.fatal) == (
            "auth",
            True,
        )  # waiting cannot cure it
        assert password not in without.reason
    finally:
        setup.stop()
