"""The edge's one Redis write: dedupe and append, batched across concurrent requests.

Every request hands its event to `IngestWriter.write` and awaits its outcome. A flush task takes
every event queued so far and sends them all in ONE write of pipelined ``EVALSHA`` calls of
`relay.core.keys.INGEST_SCRIPT`, so a burst of N requests costs one round trip instead of N. At most
`MAX_FLUSHES` are in flight; while they are busy, new events queue up and leave together in the
next one, so batches grow with the load instead of the round trips.

Time is bounded per batch rather than per request (one timer per flush): a batch must be answered
by the time its oldest event has waited ``timeout``, so no request waits longer than that in
total, however long it queued. A flush always settles every waiter it took, whatever happens.

A request that got `RedisUnavailable` may still have been stored (Redis may run the script after
we stopped waiting). That is safe: the client is told 503, Sphere delivers again, and the
redelivery is answered "duplicate" with the original entry id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.core.keys import EVENTS_STREAM, INGEST_SCRIPT, dedupe_redis_key
from relay.edge.errors import RedisUnavailable

log = logging.getLogger(__name__)

INGEST_SHA = hashlib.sha1(INGEST_SCRIPT.encode()).hexdigest()
"""What Redis names the script in its cache (``SCRIPT LOAD`` returns the same digest). Not redis-py's
`register_script`: in a pipeline it sends ``SCRIPT EXISTS`` first, two round trips per batch, not one."""

MAX_FLUSHES = 2
"""Flushes in flight at once. More would not make Redis (one thread) faster, only batches smaller."""

Written = tuple[bool, bytes]
"""``(is_new, entry_id)``: the new entry's id, or the original one for a redelivery."""


class Unconfirmed(RedisUnavailable):
    """Stored on the primary, but fewer than ``RELAY_MIN_REPLICAS`` replicas confirmed it in time."""


# (the packed EVALSHA command, when it was queued (loop time), the request's waiter)
_Pending = tuple[bytes, float, "asyncio.Future[Written]"]


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


class IngestWriter:
    """Stores events in `EVENTS_STREAM`, deduplicated for `dedupe_seconds`, in batched round trips.

    `client` should have no ``socket_timeout``: the writer bounds each flush itself, and redis-py
    would otherwise start a timer for every reply of every batch.
    """

    def __init__(
        self,
        client: Redis,
        *,
        dedupe_seconds: int,
        timeout: float,
        max_flushes: int = MAX_FLUSHES,
        on_redis_error: Callable[[str], None] | None = None,
        min_replicas: int = 0,
        replica_timeout: float = 0.5,
    ) -> None:
        self._client = client
        # With replicas to wait for, every batch ends with WAIT in the same write: its reply says how
        # many replicas have everything this connection wrote, the batch included.
        self._min_replicas = min_replicas
        self._replica_timeout = replica_timeout
        self._wait = (
            b"*3\r\n"
            + b"".join(_bulk(v) for v in (b"WAIT", b"%d" % min_replicas, b"%d" % (replica_timeout * 1000)))
            if min_replicas > 0
            else b""
        )
        # Told the kind of each failed round trip ("timeout", "connection", "other") and of each
        # write Redis refused ("refused"): the edge counts them in its metrics.
        self._on_redis_error = on_redis_error or _ignore
        self._timeout = timeout
        self._max_flushes = max_flushes
        # EVALSHA <sha> 2 <dedupe key> <stream> <seconds> <type> <body> <received ms> <dedupe>,
        # in RESP: everything but the five per-event values is the same for every call.
        self._head = b"*10\r\n" + b"".join(_bulk(v) for v in (b"EVALSHA", INGEST_SHA.encode(), b"2"))
        self._stream_and_window = _bulk(EVENTS_STREAM.encode()) + _bulk(b"%d" % dedupe_seconds)
        self._pending: list[_Pending] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._scheduled = False  # a flush task exists that has not taken its batch yet
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = (
            None  # the one the edge serves on, from the first write
        )

    async def write(
        self, dedupe_key: str, event_type: str, body: bytes, received_ms: int, source: str = ""
    ) -> Written:
        """Store one event unless its dedupe key was seen within the window.

        `source` names the sender in the entry (empty for Sphere, whose entries have no such field).
        Raises `RedisUnavailable` when Redis fails or does not answer within the timeout, and at
        once when the writer is closed.
        """
        if self._closed:
            raise RedisUnavailable("the edge is shutting down")
        loop = self._running_loop()
        future: asyncio.Future[Written] = loop.create_future()
        command = self._pack(dedupe_key, event_type, body, received_ms)
        if source:
            command = b"*11" + command[3:] + _bulk(source.encode())
        self._pending.append((command, loop.time(), future))
        if not self._scheduled and len(self._flushes) < self._max_flushes:
            self._schedule(loop)
        return await future

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:  # asyncio.get_running_loop() makes a getpid() system call each time
            loop = self._loop = asyncio.get_running_loop()
        return loop

    async def close(self) -> None:
        """Refuse new writes and wait for the flushes in flight (each bounded by the timeout)."""
        self._closed = True
        while self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    def _pack(self, dedupe_key: str, event_type: str, body: bytes, received_ms: int) -> bytes:
        # Packed by hand: redis-py's generic packer costs more than everything else per event.
        key = dedupe_key.encode()
        return b"".join(
            (
                self._head,
                _bulk(dedupe_redis_key(dedupe_key).encode()),
                self._stream_and_window,
                _bulk(event_type.encode()),
                _bulk(body),
                _bulk(b"%d" % received_ms),
                _bulk(key),
            )
        )

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # The task's first step runs on the next tick, after the other requests of this tick
        # have queued their events too.
        self._scheduled = True
        task = loop.create_task(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if self._pending and not self._scheduled:
            self._schedule(task.get_loop())  # what queued up while every flush was busy

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._scheduled = False
        deadline = batch[0][1] + self._timeout
        try:
            if asyncio.get_running_loop().time() >= deadline:
                # It queued behind stalled flushes for the whole timeout: don't send it at all.
                raise TimeoutError
            async with asyncio.timeout_at(deadline):
                replies = await self._send([command for command, _, _ in batch])
        except (RedisError, OSError, TimeoutError) as exc:
            # TimeoutError is our bound; redis-py raises its own errors for refused or lost connections.
            self._on_redis_error(_error_kind(exc))
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer within {self._timeout}s"
            log.warning(
                "redis unavailable, %d event(s) refused with 503", len(batch), extra={"reason": reason}
            )
            _fail(batch, RedisUnavailable, reason)
        except asyncio.CancelledError:
            _fail(batch, RedisUnavailable, "the edge is shutting down")
            raise
        except Exception:
            log.exception("ingest flush failed unexpectedly")
            _fail(batch, RuntimeError, "ingest flush failed")
        else:
            for (_, _, waiter), reply in zip(batch, replies, strict=True):
                if waiter.done():  # its request was cancelled
                    continue
                if isinstance(reply, RedisUnavailable) and not isinstance(reply, Unconfirmed):
                    self._on_redis_error("refused")
                _settle(waiter, reply)

    async def _send(self, commands: list[bytes]) -> list[Written | Exception]:
        replies, replicas = await self._round_trip(commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis restarted (or someone ran SCRIPT FLUSH): the script cache is empty. Those
            # calls did not run, so sending them again cannot store anything twice.
            await self._client.script_load(INGEST_SCRIPT)
            retried, replicas_again = await self._round_trip([commands[i] for i in missing])
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
            replicas = min(replicas, replicas_again)  # each WAIT vouches for its own connection's writes
        written = [_written(reply) for reply in replies]
        if replicas < self._min_replicas:
            # Stored on the primary, not confirmed elsewhere: 503, and Sphere's redelivery is answered
            # as a duplicate once the write has reached the replicas (or stored again after a failover).
            self._on_redis_error("replicas")
            reason = (
                f"{replicas} of {self._min_replicas} replica(s) confirmed the write "
                f"within {self._replica_timeout}s"
            )
            log.warning(
                "too few replicas, %d event(s) refused with 503", len(written), extra={"reason": reason}
            )
            written = [reply if isinstance(reply, Exception) else Unconfirmed(reason) for reply in written]
        return written

    async def _round_trip(self, commands: list[bytes]) -> tuple[list[object], int]:
        """Send `commands` (and the WAIT, if any) in one write on a pooled connection; one reply (or
        error) for each, and how many replicas the WAIT counted (`_min_replicas` when there is none)."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()
        try:
            # On any failure (or cancellation) redis-py closes the connection before raising, so
            # a half-read batch can never leave stale replies for the next user.
            await connection.send_packed_command(b"".join(commands) + self._wait, check_health=False)
            replies: list[object] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as error:  # a whole error reply: the connection is still in step
                    replies.append(error)
            if not self._wait:
                return replies, self._min_replicas
            try:
                replicas = await connection.read_response()
            except ResponseError:  # e.g. WAIT sent to a replica: nothing is confirmed
                replicas = 0
            return replies, int(replicas) if isinstance(replicas, int) else 0
        finally:
            await pool.release(connection)


def _ignore(kind: str) -> None:
    pass


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, RedisTimeoutError)):
        return "timeout"
    if isinstance(exc, (RedisConnectionError, OSError)):
        return "connection"
    return "other"


def _written(reply: object) -> Written | Exception:
    """One script reply, ``[1 | 0, entry id]``, or the error Redis answered for that call."""
    if isinstance(reply, ResponseError):
        # OOM, MISCONF, READONLY, BUSY, a wrong key type...: Redis cannot take the event now.
        return RedisUnavailable(f"redis refused the write: {str(reply).splitlines()[0]}")
    if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
        return bool(reply[0]), reply[1]
    return RuntimeError(f"unexpected reply from the ingest script: {type(reply).__name__}")


def _fail(batch: list[_Pending], error: type[Exception], message: str) -> None:
    # A fresh exception per request: a shared one would collect every request's traceback.
    for _, _, waiter in batch:
        if not waiter.done():
            _settle(waiter, error(message))


def _settle(waiter: asyncio.Future[Written], outcome: Written | Exception) -> None:
    if isinstance(outcome, Exception):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)
