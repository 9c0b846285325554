"""The worker's heartbeat (`relay.core.heartbeat`): which jobs run now, written every few seconds.

It runs as a task on the worker's event loop, so a loop that is stuck (a handler blocking it) stops
beating as surely as a worker cut off from Redis: ``python -m worker.health`` sees either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from relay.core.heartbeat import BEAT_SECONDS, EXPIRE_SECONDS, Heartbeat, Running
from relay.core.keys import worker_heartbeat_key
from relay.core.redis import RedisTarget, async_client, failure

log = logging.getLogger("worker.heartbeat")


def heartbeat_client(target: RedisTarget) -> Redis:
    """A client for the heartbeat alone: one try per beat, so a failure is seen (and said) at once."""
    return async_client(target, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class InFlight:
    """The jobs this process runs now, and how many it has finished."""

    def __init__(self) -> None:
        self._running: dict[int, Running] = {}
        self._next = 0
        self.done = 0

    @contextlib.contextmanager
    def track(self, handler: str, entry_id: str) -> Iterator[None]:
        token, self._next = self._next, self._next + 1
        self._running[token] = Running(handler, entry_id, _now_ms())
        try:
            yield
        finally:
            del self._running[token]
            self.done += 1

    def running(self) -> list[Running]:
        return sorted(self._running.values(), key=lambda r: r.since_ms)


class HeartbeatWriter:
    """Writes ``relay:worker:<name>`` every `interval` seconds until `stop`; `close` deletes it."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        in_flight: InFlight,
        *,
        interval: float = BEAT_SECONDS,
        where: str = "Redis",
    ) -> None:
        self.redis = redis
        self.where = where
        self.name = name
        self.in_flight = in_flight
        self.interval = interval
        self.started_ms = _now_ms()
        self._stop = asyncio.Event()

    def current(self) -> Heartbeat:
        return Heartbeat(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_ms=self.started_ms,
            beat_ms=_now_ms(),
            running=self.in_flight.running(),
            jobs_done=self.in_flight.done,
        )

    async def beat(self) -> None:
        key = worker_heartbeat_key(self.name)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)  # a whole new hash: no field of an older version lingers
            pipe.hset(key, mapping=self.current().to_hash())
            pipe.expire(key, EXPIRE_SECONDS)
            await pipe.execute()

    async def run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                await self.beat()
                if failing:
                    log.info("Redis at %s answers again", self.where)
                failing = False
            except Exception as error:  # the beat goes stale, which is how health sees it
                failing = True
                why = failure(error)
                log.warning(
                    "cannot reach Redis at %s: %s; next try in %.0f s",
                    self.where, why.reason, self.interval, extra={"redis": self.where, "reason": why.kind},
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        """Stop beating and delete the heartbeat: this worker stopped on purpose."""
        self.stop()
        with contextlib.suppress(Exception):
            await self.redis.delete(worker_heartbeat_key(self.name))
