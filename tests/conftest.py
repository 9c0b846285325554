"""Fixtures shared by every test: a private real Redis, never anyone's data and never a mock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as sync_redis
import redis.asyncio as aioredis

from relay.core.settings import Settings
from tests.support.redis_server import RedisServer

SECRET = "test-secret-5d1c0a7e"
PREVIOUS_SECRET = "old-secret-91f3c8a6"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; `redis_url` empties it before each test."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test alone, which the test may kill, pause and restart."""
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(shared_redis: RedisServer) -> str:
    shared_redis.flush()
    return shared_redis.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def client(redis_url: str) -> Iterator[sync_redis.Redis]:
    """A synchronous client on the same (just emptied) Redis, for tests that are not async themselves."""
    client = sync_redis.Redis.from_url(redis_url)
    yield client
    client.close()


def make_settings(redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "secret": SECRET,
        "previous_secrets": [PREVIOUS_SECRET],
        "redis_url": redis_url,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url)
