"""The worker's Redis client: arq's own `ArqRedis`, with transactions that survive a dropped connection.

arq's poll loop claims each job with ``WATCH in-progress key; EXISTS; ZSCORE; MULTI; PSETEX; EXEC``
and expects a lost race as `WatchError` from ``EXEC``. When the connection drops between ``WATCH``
and ``EXEC`` (Redis killed, restarted, or a network blip), redis-py raises that `WatchError` from
the ``EXISTS`` or ``ZSCORE`` instead, outside arq's ``try``; it ends arq's main loop and the worker
process exits (arq issue #498). A kill -9 of Redis under load hits that window often enough to
matter.

`ResilientPipeline` keeps redis-py's contract, a transaction whose ``WATCH`` was lost never commits,
but reports it where callers look for it: the reads in between reconnect and retry like any other
command (so they return real values), and ``execute()`` raises `WatchError` without sending the
transaction. arq then skips the job as "started elsewhere" and takes it at its next poll. Handlers'
own ``WATCH`` transactions (``ctx["redis"]`` is this client) get the same, standard, `WatchError`.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.exceptions import WatchError


class ResilientPipeline(Pipeline):
    """A redis-py `Pipeline` that raises a lost ``WATCH`` from ``execute()``, not from the next read."""

    _watch_lost = False

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
        return await super().execute(raise_on_error)

    async def reset(self) -> None:
        self._watch_lost = False
        await super().reset()  # type: ignore[no-untyped-call]


class ResilientArqRedis(ArqRedis):
    """`ArqRedis` whose pipelines are `ResilientPipeline`."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> ResilientPipeline:
        return ResilientPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def worker_redis(settings: RedisSettings, *, queue: str, expires_extra_ms: int) -> ResilientArqRedis:
    """The client arq's ``Worker`` takes as ``redis_pool``, configured as arq's ``create_pool`` would.

    Nothing connects until the worker's first command, inside its event loop.
    """
    return ResilientArqRedis(
        host=settings.host,
        port=settings.port,
        db=settings.database,
        username=settings.username,
        password=settings.password,
        unix_socket_path=settings.unix_socket_path,
        socket_connect_timeout=settings.conn_timeout,
        ssl=settings.ssl,
        ssl_keyfile=settings.ssl_keyfile,
        ssl_certfile=settings.ssl_certfile,
        ssl_cert_reqs=settings.ssl_cert_reqs,
        ssl_ca_certs=settings.ssl_ca_certs,
        ssl_ca_data=settings.ssl_ca_data,
        ssl_check_hostname=settings.ssl_check_hostname,
        retry=settings.retry,
        retry_on_timeout=settings.retry_on_timeout,
        retry_on_error=settings.retry_on_error,
        max_connections=settings.max_connections,
        default_queue_name=queue,
        expires_extra_ms=expires_extra_ms,
    )
