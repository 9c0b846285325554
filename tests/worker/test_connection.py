"""The worker's Redis client: a connection lost while WATCHing fails the transaction, not the next read.

arq's poll loop reads between WATCH and EXEC and catches `WatchError` only from EXEC; redis-py's
own pipeline raises it from the read, which ended arq's worker process when Redis restarted. A
real Redis is restarted between the WATCH and the read, deterministically.
"""

from __future__ import annotations

import threading

import pytest
from redis.asyncio import Redis
from redis.exceptions import WatchError

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from worker.connection import ResilientArqRedis, worker_redis
from worker.main import redis_settings

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def client(server: RedisServer) -> ResilientArqRedis:
    return worker_redis(redis_settings(make_settings(server.url)), queue="q", expires_extra_ms=1000)


async def test_a_watch_lost_with_its_connection_fails_at_execute_and_the_reads_reconnect(
    own_redis: RedisServer,
) -> None:
    redis = client(own_redis)
    await redis.set("in-progress", b"1")
    try:
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch("in-progress")
            own_redis.restart()  # kill -9 and start again: the watching connection is gone
            assert await pipe.exists("in-progress") == 1  # a real answer, from a new connection
            pipe.multi()
            pipe.set("claimed", b"yes")
            with pytest.raises(WatchError):
                await pipe.execute()
        assert await redis.get("claimed") is None  # the transaction was never sent

        async with redis.pipeline(transaction=True) as pipe:  # the next one works as usual
            await pipe.watch("in-progress")
            assert await pipe.exists("in-progress") == 1
            pipe.multi()
            pipe.set("claimed", b"yes")
            assert await pipe.execute() == [True]
        assert await redis.get("claimed") == b"yes"
    finally:
        await redis.aclose()


async def test_redis_pys_own_pipeline_raises_from_the_read_which_is_what_ended_arqs_loop(
    own_redis: RedisServer,
) -> None:
    settings = redis_settings(make_settings(own_redis.url))
    redis = Redis.from_url(own_redis.url, retry=settings.retry, retry_on_error=settings.retry_on_error)
    try:
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch("in-progress")
            own_redis.restart()
            with pytest.raises(WatchError):
                await pipe.exists("in-progress")  # arq does not expect it here
    finally:
        await redis.aclose()


async def test_commands_outside_a_watch_retry_through_a_restart(own_redis: RedisServer) -> None:
    redis = client(own_redis)
    try:
        await redis.set("before", b"1")
        own_redis.restart()
        assert await redis.get("before") == b"1"  # append-only: kept; the client reconnected
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr("n")
            pipe.incr("n")
            assert await pipe.execute() == [1, 2]
    finally:
        await redis.aclose()


async def test_a_command_issued_while_redis_restarts_waits_for_it_instead_of_failing(
    own_redis: RedisServer,
) -> None:
    redis = client(own_redis)  # a fresh pool: the command must open a new connection
    own_redis.kill()
    # Redis comes back a second later; meanwhile every connect is refused (ECONNREFUSED).
    restart = threading.Timer(1.0, own_redis.start)
    restart.start()
    try:
        assert await redis.ping()  # refused connects are retried within the ~30 s budget
    finally:
        restart.join()
        await redis.aclose()
