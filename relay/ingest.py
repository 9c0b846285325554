"""The edge's one Redis write: dedupe and append, batched across concurrent requests.

Every request hands its event to `IngestWriter.write` and awaits a future. The first request of a
loop tick starts a flush task; when that task runs, it takes every event queued so far and sends
them all in ONE pipeline of ``EVALSHA`` calls of `relay.streams.INGEST_SCRIPT`, so a burst of N
requests costs one round trip instead of N. Several flushes may be in flight at once, each on its
own pooled connection.

Each flush is bounded by ``redis_timeout`` as a whole, which bounds the wait of every request in it
with one timer per batch instead of one per request. A flush always settles every future it took,
whatever happens, so no request can hang on it.

A request that got `RedisUnavailable` may still have been stored (Redis may run the script after
we stopped waiting). That is safe: the client is told 503, Sphere delivers again, and the
redelivery is answered "duplicate" with the original entry id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from relay.errors import RedisUnavailable
from relay.streams import EVENTS_STREAM, INGEST_SCRIPT, dedupe_redis_key

log = logging.getLogger(__name__)

INGEST_SHA = hashlib.sha1(INGEST_SCRIPT.encode()).hexdigest()
"""What Redis names the script in its cache (``SCRIPT LOAD`` returns the same digest)."""

Written = tuple[bool, bytes]
"""``(is_new, entry_id)``: the new entry's id, or the original one for a redelivery."""

# (redis dedupe key, dedupe key, event type, raw body, received ms, the waiting request's future)
_Pending = tuple[str, str, str, bytes, int, "asyncio.Future[Written]"]


class IngestWriter:
    """Stores events in `EVENTS_STREAM`, deduplicated for `dedupe_seconds`, in batched round trips."""

    def __init__(self, client: Redis, *, dedupe_seconds: int, timeout: float) -> None:
        self._client = client
        self._dedupe_seconds = dedupe_seconds
        self._timeout = timeout
        self._pending: list[_Pending] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._closed = False

    async def write(self, dedupe_key: str, event_type: str, body: bytes, received_ms: int) -> Written:
        """Store one event unless its dedupe key was seen within the window.

        Raises `RedisUnavailable` when Redis fails or does not answer within the timeout.
        """
        if self._closed:
            raise RedisUnavailable("the edge is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Written] = loop.create_future()
        if not self._pending:
            # The task's first step runs on the next tick, after the other requests of this
            # tick have queued their events too.
            task = loop.create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        self._pending.append(
            (dedupe_redis_key(dedupe_key), dedupe_key, event_type, body, received_ms, future)
        )
        return await future

    async def close(self) -> None:
        """Refuse new writes and wait for the flushes in flight (each bounded by the timeout)."""
        self._closed = True
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._send(batch)
        except (RedisError, OSError, TimeoutError) as exc:
            # TimeoutError covers both our bound and redis-py's socket timeouts.
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
            for item, reply in zip(batch, replies, strict=True):
                future = item[5]
                if future.done():  # its request was cancelled
                    continue
                if isinstance(reply, BaseException):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    async def _send(self, batch: list[_Pending]) -> list[Written | Exception]:
        replies = await self._evalsha(batch)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis restarted (or someone ran SCRIPT FLUSH): the scripts cache is empty. Those
            # calls did not run, so sending them again cannot store anything twice.
            await self._client.script_load(INGEST_SCRIPT)
            retried = await self._evalsha([batch[i] for i in missing])
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
        return [_written(reply) for reply in replies]

    async def _evalsha(self, batch: list[_Pending]) -> list[object]:
        pipe = self._client.pipeline(transaction=False)
        for redis_key, dedupe_key, event_type, body, received_ms, _ in batch:
            pipe.execute_command(  # typed `evalsha` wrongly wants str args
                "EVALSHA", INGEST_SHA, 2, redis_key, EVENTS_STREAM,
                self._dedupe_seconds, event_type, body, received_ms, dedupe_key,
            )  # fmt: skip
        replies: list[object] = await pipe.execute(raise_on_error=False)
        return replies


def _written(reply: object) -> Written | Exception:
    """One script reply, ``[1 | 0, entry id]``, or the error Redis answered for that call."""
    if isinstance(reply, ResponseError):
        # OOM, MISCONF, READONLY, BUSY, a wrong key type...: Redis cannot take the event now.
        return RedisUnavailable(f"redis refused the write: {str(reply).split(chr(10))[0]}")
    if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
        return bool(reply[0]), reply[1]
    return RuntimeError(f"unexpected reply from the ingest script: {type(reply).__name__}")


def _fail(batch: list[_Pending], error: type[Exception], message: str) -> None:
    # A fresh exception per request: a shared one would collect every request's traceback.
    for item in batch:
        future = item[5]
        if not future.done():
            future.set_exception(error(message))
