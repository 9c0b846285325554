"""The worker's Redis client: a connection lost while WATCHing fails the transaction, not the next read.

arq's poll loop reads between WATCH and EXEC and catches `WatchError` only from EXEC; redis-py's
own pipeline raises it from the read, which ended arq's worker process when Redis restarted. A
real Redis is restarted between the WATCH and the read, deterministically.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from redis.asyncio import Redis
from redis.exceptions import WatchError

from tests.conftest import make_settings
from tests.support.processes import python_with_a_library_changed
from tests.support.redis_server import RedisServer
from tests.worker.helpers import arq_claim, arq_poll
from worker.claim import CLAIM_SCRIPT, POLL_SCRIPT
from worker.connection import (
    ResilientArqRedis,
    ResilientPipeline,
    RetryingConnectionPool,
    connection_options,
    unsupported_reason,
    worker_redis,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def client(server: RedisServer) -> ResilientArqRedis:
    return worker_redis(make_settings(server.url), queue="q", expires_extra_ms=1000)


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
    options = connection_options()
    redis = Redis.from_url(own_redis.url, retry=options["retry"], retry_on_error=options["retry_on_error"])
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


async def test_a_transaction_on_a_pooled_connection_rides_out_a_restart(own_redis: RedisServer) -> None:
    """arq's finish_job: a transaction whose pooled connection died with Redis. redis-py takes the
    connection (and reconnects it) before its retry loop; a refused reconnect there ended the worker."""
    redis = client(own_redis)
    try:
        assert await redis.ping()  # one connection now waits, idle, in the pool
        own_redis.kill()
        restart = threading.Timer(1.0, own_redis.start)
        restart.start()
        assert isinstance(redis.connection_pool, RetryingConnectionPool)  # takes connections with retries
        try:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incr("n")
                pipe.incr("n")
                assert await pipe.execute() == [1, 2]
        finally:
            restart.join()
    finally:
        await redis.aclose()


async def test_a_handshake_cut_off_by_a_dying_redis_is_retried(own_redis: RedisServer) -> None:
    """Redis gone just as a new connection's handshake runs: redis-py raises from inside the pool,
    outside every command's retry. The pool's own retry must take it (its failure callback once
    raised TypeError there, which ended arq's poll loop: seen in tests/reliability/test_reconnect.py)."""
    resets = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal resets
        if resets < 2:  # the first two connections: reset as soon as they open (RST, not FIN)
            resets += 1
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", own_redis.port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
        )

    relay = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = relay.sockets[0].getsockname()[1]
    redis = worker_redis(make_settings(f"redis://127.0.0.1:{port}/0"), queue="q", expires_extra_ms=1000)
    try:
        assert await redis.ping()
        assert resets == 2  # both cut-off handshakes happened, and were retried
    finally:
        await redis.aclose()
        relay.close()
        await relay.wait_closed()


# -- arq's claim of a job its poll did not list: plain WATCH, EXISTS, ZSCORE, transaction --------

QUEUE = "q"  # the client's default queue (see `client`)


async def reads_processed(redis: Redis) -> int:
    """Socket reads Redis has processed so far (the INFO call itself adds one)."""
    return int((await redis.info("stats"))["total_reads_processed"])


async def claim_is_refused(pipe: ResilientPipeline, key: str) -> None:
    """arq's transaction for the claim of `key`, which must fail as a lost race does."""
    pipe.multi()
    pipe.psetex(key, 60_000, b"1")
    with pytest.raises(WatchError):
        await pipe.execute()


async def test_a_claim_sees_what_the_reads_would_have_seen(own_redis: RedisServer) -> None:
    redis = client(own_redis)
    try:
        await redis.zadd(QUEUE, {"queued": 1000, "running": 1000})
        await redis.set(in_progress_key_prefix + "running", b"1")

        assert await arq_claim(redis, "queued") == (True, 0, 1000.0)
        assert await arq_claim(redis, "queued") == (False, 1, 1000.0)  # now in progress: skipped
        assert await arq_claim(redis, "running") == (False, 1, 1000.0)
        assert await arq_claim(redis, "not-queued") == (False, 0, None)
        assert await redis.get(in_progress_key_prefix + "queued") == b"1"
    finally:
        await redis.aclose()


async def test_a_claim_raced_after_its_reads_is_not_committed(own_redis: RedisServer) -> None:
    redis, other = client(own_redis), Redis.from_url(own_redis.url)
    key = in_progress_key_prefix + "job-1"
    try:
        await redis.zadd(QUEUE, {"job-1": 1000})
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            assert (await pipe.exists(key), await pipe.zscore(QUEUE, "job-1")) == (0, 1000.0)
            await other.set(key, b"other worker")  # the other worker claims it first
            await claim_is_refused(pipe, key)
        assert await redis.get(key) == b"other worker"
    finally:
        await redis.aclose()
        await other.aclose()


async def test_a_claim_whose_connection_dies_after_the_reads_is_not_committed(
    own_redis: RedisServer,
) -> None:
    redis = client(own_redis)
    key = in_progress_key_prefix + "job-1"
    try:
        await redis.zadd(QUEUE, {"job-1": 1000})
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            assert await pipe.exists(key) == 0
            assert await pipe.zscore(QUEUE, "job-1") == 1000.0
            own_redis.restart()  # the watching connection is gone before the transaction
            await claim_is_refused(pipe, key)
        assert await redis.get(key) is None
    finally:
        await redis.aclose()


async def test_each_poll_lists_every_due_job_from_a_random_place(own_redis: RedisServer) -> None:
    redis = client(own_redis)
    jobs = [f"job-{i:02d}" for i in range(10)]
    try:
        await redis.zadd(QUEUE, {job: 1000 + i for i, job in enumerate(jobs)})
        await redis.zadd(QUEUE, {"later": 50_000})
        firsts = set()
        for _ in range(50):
            # arq 0.28's poll (Worker._poll_iteration), long after the jobs were due
            listed = [j.decode() for j in await redis.zrangebyscore(QUEUE, "-inf", 20_000, start=0, num=500)]
            turn = jobs.index(listed[0])
            assert listed == jobs[turn:] + jobs[:turn]  # all due jobs, in order, wrapped around
            firsts.add(listed[0])
        assert len(firsts) > 1  # workers start at different places (all alike: 10**-49)

        # Other reads of the queue are left as Redis answers them.
        assert [j.decode() for j in await redis.zrangebyscore(QUEUE, "-inf", 2000)] == jobs
        scored = await redis.zrangebyscore(QUEUE, "-inf", 2000, start=0, num=3, withscores=True)
        assert [(j.decode(), s) for j, s in scored] == [
            ("job-00", 1000.0),
            ("job-01", 1001.0),
            ("job-02", 1002.0),
        ]
    finally:
        await redis.aclose()


# -- a job arq's poll listed: claim and first reads in one script (worker.claim) ----------------


async def run_reads(redis: ResilientArqRedis, job_id: str) -> list[object]:
    """The transaction arq 0.28's Worker.run_job starts with."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(job_key_prefix + job_id)
        pipe.incr(retry_key_prefix + job_id)
        pipe.expire(retry_key_prefix + job_id, 88400)
        return list(await pipe.execute())


async def test_a_polled_job_is_claimed_and_read_in_one_round_trip(own_redis: RedisServer) -> None:
    redis, probe = client(own_redis), Redis.from_url(own_redis.url)
    try:
        await redis.zadd(QUEUE, {"job-1": 1000})
        await redis.set(job_key_prefix + "job-1", b"payload")
        for script in (POLL_SCRIPT, CLAIM_SCRIPT):
            await redis.script_load(script)  # as after the worker's first poll and claim
        before = await reads_processed(probe)

        assert await arq_poll(redis) == ["job-1"]
        assert await arq_claim(redis, "job-1") == (True, 0, 1000.0)
        assert await run_reads(redis, "job-1") == [b"payload", 1, True]

        # the poll, the claim script, this INFO: the run's reads were answered by the claim
        assert await reads_processed(probe) - before == 3
        assert await redis.get(in_progress_key_prefix + "job-1") == b"1"
        assert 0 < await redis.pttl(in_progress_key_prefix + "job-1") <= 60_000
        assert await redis.get(retry_key_prefix + "job-1") == b"1"
        assert 88_000 < await redis.ttl(retry_key_prefix + "job-1") <= 88_400
        assert redis.claims.fetched == {}

        # The next run of the same job (a retry) counts its try the same way.
        await redis.delete(in_progress_key_prefix + "job-1")
        assert await arq_poll(redis) == ["job-1"]
        assert await arq_claim(redis, "job-1") == (True, 0, 1000.0)
        assert await run_reads(redis, "job-1") == [b"payload", 2, True]
    finally:
        await redis.aclose()
        await probe.aclose()


@pytest.mark.parametrize("change", ["started elsewhere", "finished", "deferred"])
async def test_a_polled_job_that_changed_before_its_claim_is_left_alone(
    own_redis: RedisServer, change: str
) -> None:
    redis, other = client(own_redis), Redis.from_url(own_redis.url)
    try:
        await redis.zadd(QUEUE, {"job-1": 1000})
        await redis.set(job_key_prefix + "job-1", b"payload")
        assert await arq_poll(redis) == ["job-1"]
        if change == "started elsewhere":
            await other.set(in_progress_key_prefix + "job-1", b"other worker")
        elif change == "finished":
            await other.zrem(QUEUE, "job-1")
        else:
            await other.zadd(QUEUE, {"job-1": 10**13})  # a retry deferred far past now

        # arq sees the poll's answers, then its transaction fails as a lost race does.
        assert await arq_claim(redis, "job-1") == (False, 0, 1000.0)
        assert await redis.get(retry_key_prefix + "job-1") is None  # no try was counted
        expected = b"other worker" if change == "started elsewhere" else None
        assert await redis.get(in_progress_key_prefix + "job-1") == expected
        assert redis.claims.fetched == {}
    finally:
        await redis.aclose()
        await other.aclose()


async def test_another_command_during_a_polled_claim_fails_the_claim(own_redis: RedisServer) -> None:
    redis = client(own_redis)
    key = in_progress_key_prefix + "job-1"
    try:
        await redis.zadd(QUEUE, {"job-1": 1000})
        assert await arq_poll(redis) == ["job-1"]
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            assert await pipe.exists(key) == 0
            assert await pipe.get("something else") is None  # not arq's claim: runs for real
            await claim_is_refused(pipe, key)
        assert await redis.get(key) is None
    finally:
        await redis.aclose()


async def test_a_polled_claim_that_redis_refuses_fails_as_a_lost_race(own_redis: RedisServer) -> None:
    redis = client(own_redis)
    try:
        await redis.zadd(QUEUE, {"job-1": 1000})
        assert await arq_poll(redis) == ["job-1"]
        await redis.delete(QUEUE)
        await redis.set(QUEUE, b"not a sorted set")  # the script's ZSCORE fails with WRONGTYPE
        # arq skips the job (WatchError), rather than its poll loop ending on the error.
        assert await arq_claim(redis, "job-1") == (False, 0, 1000.0)
        assert await redis.get(in_progress_key_prefix + "job-1") is None
    finally:
        await redis.aclose()


async def test_a_poll_leaves_out_the_jobs_already_in_progress(own_redis: RedisServer) -> None:
    redis = client(own_redis)
    try:
        await redis.zadd(QUEUE, {"running": 1000, "waiting": 1001, "later": 50_000})
        await redis.set(in_progress_key_prefix + "running", b"1")
        assert await arq_poll(redis, now=20_000) == ["waiting"]
        assert redis.claims.due == {"waiting": 1001.0}
    finally:
        await redis.aclose()


def test_the_installed_redis_py_and_arq_fit_the_resilient_client() -> None:
    assert unsupported_reason() is None


def test_a_redis_py_without_the_private_method_it_overrides_gets_plain_arq_pipelines() -> None:
    # A redis-py release that renamed the method, made here by removing it before worker.connection
    # is imported, in a process of its own.
    out = python_with_a_library_changed(
        "from redis.asyncio.client import Pipeline\ndel Pipeline._disconnect_reset_raise",
        "from relay.core.settings import Settings\n"
        "from worker import connection\n"
        "settings = Settings(secret='probe-secret-0123456789', redis_url='redis://127.0.0.1:1/0', _env_file=None)\n"
        "client = connection.worker_redis(settings, queue='q', expires_extra_ms=0)\n"
        "print(type(client.pipeline()).__name__, connection.unsupported_reason())",
    )

    warning, result = out.splitlines()
    assert warning.startswith("WARNING plain arq claims and pipelines: redis-py's Pipeline has no")
    assert result == "Pipeline redis-py's Pipeline has no _disconnect_reset_raise"
