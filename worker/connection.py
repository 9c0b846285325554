"""The worker's Redis client: arq's own `ArqRedis`, with transactions that survive a dropped
connection, and arq's claim of a job its poll just listed sent as one script (`worker.claim`).

How and why, with the arq and redis-py internals it stands on: docs/INTERNALS.md,
"worker/connection.py".
"""

from __future__ import annotations

import logging
import math
import random
import time
from importlib.metadata import version
from typing import Any

from arq.connections import ArqRedis
from arq.constants import health_check_key_suffix, in_progress_key_prefix
from arq.utils import timestamp_ms
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError, WatchError

from relay.core.redis import RedisTarget, SentinelPool, async_pool, failure
from worker.claim import (
    CLAIM_SCRIPT,
    POLL_SCRIPT,
    RETRY_KEY_SECONDS,
    Claims,
    claim_keys,
    claimed_in_progress_ms,
    run_reads_job,
)
from worker.idle import IdlePacer
from worker.startup import StartupWait

log = logging.getLogger("worker.connection")

Command = tuple[Any, ...]
_NOT_FETCHED = object()

_PIPELINE_METHODS = ("_disconnect_reset_raise", "immediate_execute_command", "execute", "reset")
"""redis-py's `Pipeline` methods `ResilientPipeline` overrides (docs/INTERNALS.md)."""


def unsupported_reason() -> str | None:
    """Why the installed redis-py or arq does not fit `ResilientPipeline` and the claim script, or None.

    They answer arq 0.28's exact claim commands and override private redis-py methods; with any other
    arq, or a redis-py without those methods, the worker uses plain arq pipelines and polls instead.
    """
    missing = [name for name in _PIPELINE_METHODS if not callable(getattr(Pipeline, name, None))]
    if missing:
        return f"redis-py's Pipeline has no {', '.join(missing)}"
    arq = version("arq")
    if not arq.startswith("0.28."):
        return f"arq {arq} is not 0.28, whose claim commands worker/claim.py answers"
    return None


_UNSUPPORTED = unsupported_reason()


class ResilientPipeline(Pipeline):
    """A redis-py `Pipeline` that raises a lost ``WATCH`` from ``execute()``, not from the next read."""

    _watch_lost = False
    claim_queue: str | None = None
    """The arq queue whose claims `watch` answers (set by `ResilientArqRedis.pipeline`)."""
    _ahead: dict[Command, Any] | None = None
    """Replies to the reads arq sends after its ``WATCH``, known from its poll, by command."""
    owner: ResilientArqRedis | None = None
    """The client this pipeline belongs to, which runs `CLAIM_SCRIPT` and keeps its `Claims`."""
    _claiming: str | None = None
    """The job whose claim `execute` sends as `CLAIM_SCRIPT` (see `worker.claim`)."""

    async def watch(self, *names: Any) -> Any:  # type: ignore[override]
        job_id = self._claimed_job(names)
        score = self.owner.claims.due.get(job_id) if job_id is not None and self.owner is not None else None
        if score is None or self.explicit_transaction or self.watching:
            return await super().watch(*names)
        # A job arq's poll just listed: answer the reads now, check them in the claim itself.
        self.watching = True  # what redis-py's WATCH sets: the reads come to us at once
        self._claiming = job_id
        self._ahead = {("EXISTS", names[0]): 0, ("ZSCORE", self.claim_queue, job_id): score}
        return True

    def _claimed_job(self, names: tuple[Any, ...]) -> str | None:
        if self.claim_queue is None or len(names) != 1 or not isinstance(names[0], str):
            return None
        if not names[0].startswith(in_progress_key_prefix):
            return None
        return names[0][len(in_progress_key_prefix) :]

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and all(isinstance(arg, str | bytes | int | float) for arg in args):
            reply = ahead.pop(args, _NOT_FETCHED)
            if reply is not _NOT_FETCHED:
                self._ahead = ahead or None  # the other read may still come; any other command ends it
                return reply
        if self._claiming is not None:
            # Not arq's claim after all: nothing was watched, so the claim must not be committed.
            self._claiming, self.watching, self._watch_lost = None, False, True
        return await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]

    async def _disconnect_reset_raise(self, conn: Connection, error: Exception) -> None:
        # redis-py calls this when a command sent while watching (or WATCH itself) fails with a
        # retryable error; its version raises WatchError here, before `execute`.
        if not self.watching:
            await super()._disconnect_reset_raise(conn, error)  # type: ignore[no-untyped-call]
            return
        await conn.disconnect()
        self._watch_lost = True  # the new connection does not watch: the transaction must not commit
        # Returning lets redis-py's retry send the command again, on a fresh connection.

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self._watch_lost:
            await self.reset()
            raise WatchError("the connection was lost while watching: the transaction was not sent")
        if self._claiming is not None:
            return await self._claim(self._claiming)
        if self.owner is not None and not self.watching:
            job_id = run_reads_job(self.command_stack)
            fetched = self.owner.claims.fetched.pop(job_id, None) if job_id is not None else None
            if fetched is not None:  # read by the job's claim, a moment ago: send nothing
                await self.reset()
                return [*fetched, True]
        return await super().execute(raise_on_error)

    async def _claim(self, job_id: str) -> list[Any]:
        """arq's claim of `job_id` as one `CLAIM_SCRIPT` call; a refused claim raises `WatchError`."""
        owner, queue = self.owner, self.claim_queue
        assert owner is not None and queue is not None  # set together with `_claiming`
        keys = claim_keys(job_id, queue)
        in_progress_ms = claimed_in_progress_ms(self.command_stack, keys[0])
        try:
            if in_progress_ms is None:
                raise WatchError(f"not arq's claim of {job_id}: nothing was sent")
            try:
                found = await owner.claim_script(
                    keys, [job_id, in_progress_ms, timestamp_ms(), RETRY_KEY_SECONDS]
                )
            except (RedisError, OSError) as error:
                # As with a lost WATCH: arq skips the job, which stays queued (or, if the script ran
                # before the connection failed, in progress until that expires, then runs).
                raise WatchError(f"the claim of {job_id} failed: {error!r}") from error
            if found is None:
                raise WatchError(f"{job_id} is in progress, finished or not due: not claimed")
            payload, job_try = found
            owner.claims.fetched[job_id] = (payload, int(job_try))
            owner.claims.claimed(job_id)  # if it is retried, this worker tries it first
            return [True]
        finally:
            owner.claims.tried(job_id)
            await self.reset()

    async def reset(self) -> None:
        self._watch_lost = False
        self._ahead = None
        self._claiming = None
        await super().reset()  # type: ignore[no-untyped-call]


class ResilientArqRedis(ArqRedis):
    """`ArqRedis` whose pipelines are `ResilientPipeline`, and whose workers spread their claims.

    Every arq worker polls the head of the same queue (``ZRANGEBYSCORE`` from offset 0) and tries the
    jobs in that order, so two workers race for the same job at every step: the loser pays for a
    claim that fails. Here a poll lists only the due jobs not already in progress: this worker's own
    (queued by its bridge, or retries of its runs) first, then other workers' jobs due for a second,
    each part starting at a random place (`worker.claim`). Only which due job a worker tries when
    changes, which arq never promised across workers anyway; every job is still run.
    """

    claims: Claims
    pacer: IdlePacer
    """Spaces arq's polls out while the queue is idle (`worker.idle`)."""
    backoff: StoppableBackoff | None = None
    """Set by `worker_redis`: the backoff of every retry of this client's connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claims = Claims()
        self.pacer = IdlePacer()
        self.claim_script = self.register_script(CLAIM_SCRIPT)
        self.poll_script = self.register_script(POLL_SCRIPT)

    @property
    def tracks_claims(self) -> bool:
        """Whether `claims` learns which of its bridge's jobs this worker took (not on the fallback)."""
        return _UNSUPPORTED is None

    def stop_retrying(self) -> None:
        """From now on, retry failed commands without waiting (the worker is stopping)."""
        if self.backoff is not None:
            self.backoff.stopping = True

    async def delete(self, *names: Any) -> Any:
        try:
            return await super().delete(*names)
        except (RedisError, OSError) as error:
            # arq's shutdown starts by deleting its health-check key; with Redis gone that failure
            # would end the process with a traceback and skip the shutdown hooks. The key expires.
            stopping = self.backoff is not None and self.backoff.stopping
            if not stopping or len(names) != 1 or not str(names[0]).endswith(health_check_key_suffix):
                raise
            log.warning("stopping without Redis: %s", failure(error).reason)
            return 0

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if _UNSUPPORTED is not None:  # the start-up check's fallback: arq's own pipelines
            return super().pipeline(transaction, shard_hint)
        pipeline = ResilientPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipeline.claim_queue = self.default_queue_name
        pipeline.owner = self
        return pipeline

    async def zrangebyscore(
        self,
        name: Any,
        min: Any,
        max: Any,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: Any = float,
    ) -> Any:
        # arq's poll, and nothing else: its queue, a slice (start and num), ids only.
        if name != self.default_queue_name or num is None or withscores or _UNSUPPORTED is not None:
            return await super().zrangebyscore(
                name, min, max, start=start, num=num, withscores=withscores, score_cast_func=score_cast_func
            )
        before_ms = timestamp_ms()
        await self.pacer.pause()
        # arq's `max` is its "now", taken before the pause: move it on by the time paused.
        now_ms = max + (timestamp_ms() - before_ms) if isinstance(max, int | float) else timestamp_ms()
        args = [_score(min), now_ms, start or 0, num, in_progress_key_prefix]
        sent = time.monotonic()
        reply = await self.poll_script([name], args)
        ids = self.claims.polled(reply, now_ms, random.randrange, limit=num, sent=sent)
        next_due = None
        if not self.claims.due:  # idle: when does the next waiting job (a retry, a later job) fall due?
            first = await super().zrangebyscore(name, f"({now_ms}", "+inf", start=0, num=1, withscores=True)
            next_due = float(first[0][1]) if first else None
        self.pacer.polled(bool(self.claims.due), next_due)
        return ids


def _score(bound: Any) -> Any:
    """A score bound as Redis spells it (arq passes ``float('-inf')``)."""
    if isinstance(bound, float) and math.isinf(bound):
        return "-inf" if bound < 0 else "+inf"
    return bound


class _RetryingGet:
    """A pool whose `get_connection` retries like the commands do, and waits for Redis the first time.

    redis-py takes a connection from the pool, and reconnects a stale one, *before* its retry loop:
    when Redis dies just as that reconnect's handshake runs ("connection reset by peer"), the error
    escapes every retry and ended arq's poll loop (seen in the chaos run). Nothing has been sent at
    that point, so trying again is always safe. (A refused connect never gets here: the connection
    retries its own connect; only a failed handshake on a connection already made does.)
    """

    connection_kwargs: dict[str, Any]
    startup: StartupWait | None = None
    """Set by `worker_redis`: the first connection waits for Redis, saying why each try failed."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Connection:
        if self.startup is not None:
            await self.startup.passed()
        take = super().get_connection  # type: ignore[misc]
        retry = self.connection_kwargs.get("retry")
        if retry is None:
            return await take(*args, **kwargs)  # type: ignore[no-any-return]
        return await retry.call_with_retry(  # type: ignore[no-any-return]
            lambda: take(*args, **kwargs), _nothing_to_undo
        )


class RetryingConnectionPool(_RetryingGet, ConnectionPool):
    """`_RetryingGet` on redis-py's pool: RELAY_REDIS_URL's one server."""


class RetryingSentinelPool(_RetryingGet, SentinelPool):
    """`_RetryingGet` on the Sentinel pool: the primary, found anew on every connect."""


async def _nothing_to_undo(_error: Exception) -> None:
    """redis.asyncio's `Retry` awaits its failure callback: it must be a coroutine function (a plain
    lambda raised TypeError from the retry itself, which ended arq's poll loop). The pool has
    already taken back and disconnected the connection whose handshake failed."""


class StoppableBackoff(ExponentialBackoff):
    """The retries' backoff, cut to nothing once the worker is stopping: arq's shutdown then fails
    fast on a Redis that is gone instead of retrying for ~30 s after SIGTERM."""

    stopping = False

    def compute(self, failures: int) -> float:
        return 0.0 if self.stopping else super().compute(failures)

    def __deepcopy__(self, memo: dict[int, Any]) -> StoppableBackoff:
        # redis-py deep-copies the Retry into every connection; all must see one `stopping` flag.
        # Sharing is safe: this backoff keeps no state of its own but that flag.
        return self


def connection_options(backoff: StoppableBackoff | None = None) -> dict[str, Any]:
    """The worker's redis-py options, riding out short Redis outages (~30 s) by retrying.

    Every command, and every connect, is retried 20 times with a backoff capped at 2 s. A longer
    outage ends the worker process (non-zero exit) for its supervisor to restart.
    """
    return {
        "retry": Retry(backoff or StoppableBackoff(cap=2.0, base=0.05), retries=20),
        # OSError: a connect refused while Redis restarts surfaces as ConnectionRefusedError, which
        # redis-py retries only when told to; without it, the first command needing a new connection
        # failed at once and ended arq's poll loop.
        "retry_on_error": [ConnectionError, TimeoutError, OSError],
        "socket_connect_timeout": CONNECT_TIMEOUT,
    }


CONNECT_TIMEOUT = 1.0
"""Seconds a connect may take (arq's own default)."""


def worker_redis(
    settings: RedisTarget, *, queue: str, expires_extra_ms: int, wait_at_start: bool = False
) -> ResilientArqRedis:
    """The client arq's ``Worker`` takes as ``redis_pool``, from the one factory (`relay.core.redis`).

    Nothing connects until the worker's first command, inside its event loop. With `wait_at_start`,
    that first command waits for Redis (`worker.startup`) instead of failing after ~30 s of silence.
    """
    if _UNSUPPORTED is not None:
        log.warning(
            "plain arq claims and pipelines: %s (a Redis restart may end this worker, claims cost more "
            "round trips); install the arq and redis-py pyproject.toml allows",
            _UNSUPPORTED,
        )
    backoff = StoppableBackoff(cap=2.0, base=0.05)
    pool = async_pool(
        settings,
        pool_class=RetryingConnectionPool,
        sentinel_pool_class=RetryingSentinelPool,
        **connection_options(backoff),
    )
    if wait_at_start:
        assert isinstance(pool, _RetryingGet)
        pool.startup = StartupWait(settings)
    client = ResilientArqRedis(pool, default_queue_name=queue, expires_extra_ms=expires_extra_ms)
    client.backoff = backoff
    client.auto_close_connection_pool = True  # as redis-py's `from_pool`: the pool is the client's alone
    return client
