"""``ctx["once"]``: a side effect done once per (event, handler, name), however often the handler runs.

At least once means a handler can run twice for one event (its worker died after the side effect,
before the outcome was stored; a replay). Wrapping the effect::

    async with ctx["once"]("grant-role") as first:
        if first:
            await grant_role(...)

runs it on the first run that gets that far and skips it on later runs. The record is written only
when the block ends without an exception, so an effect that fails is tried again on the next attempt,
never skipped. There is a window left, unavoidable without the called service's help: a worker
killed between the effect and the record (a few milliseconds) repeats it; pass ``ctx["event_id"]``
as an idempotency key where the service takes one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from types import TracebackType
from typing import cast

from arq.utils import timestamp_ms
from redis.asyncio import Redis

from worker.keys import once_redis_key


class OnceBlock:
    """One ``async with ctx["once"](name) as first:`` block."""

    def __init__(self, redis: Redis, key: str, name: str, keep_ms: int) -> None:
        self._redis, self._key, self._name, self._keep_ms = redis, key, name, keep_ms
        self._first = False

    async def __aenter__(self) -> bool:
        self._first = not await cast(Awaitable[bool], self._redis.hexists(self._key, self._name))
        return self._first

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None or not self._first:
            return  # failed: not recorded, so the next attempt runs it again
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key, self._name, str(timestamp_ms()))
            pipe.pexpire(self._key, self._keep_ms)
            await pipe.execute()


class Once:
    """``ctx["once"]`` for one handler's run on one event: call it with the effect's name."""

    def __init__(self, redis: Redis, event_id: str, handler: str, keep_ms: int) -> None:
        self._redis, self._keep_ms = redis, keep_ms
        self._key = once_redis_key(event_id, handler)

    def __call__(self, name: str) -> OnceBlock:
        """An async context manager whose value says whether the effect `name` is still to be done."""
        if not name:
            raise ValueError('ctx["once"] needs a name for the effect, e.g. ctx["once"]("grant-role")')
        return OnceBlock(self._redis, self._key, name, self._keep_ms)

    async def done(self) -> set[str]:
        """The names of the effects already done (for tests and tools)."""
        names = await cast(Awaitable[list[bytes]], self._redis.hkeys(self._key))
        return {name.decode() for name in names}


async def forget_effects(redis: Redis, runs: Iterable[tuple[str, str]]) -> int:
    """Forget the effects done for these (event id, handler) pairs, so that a replay reruns them."""
    keys = [once_redis_key(event_id, handler) for event_id, handler in runs]
    return int(await redis.delete(*keys)) if keys else 0
