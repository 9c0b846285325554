"""A worker's first connection to Redis: wait for it out loud, give up on what waiting cannot cure.

Each failed try logs a WARNING with the reason (refused, timeout, no primary known to the Sentinels)
and when the next try comes. A wrong password or a certificate that does not verify ends the process
at once with one ERROR line and exit code 1; SIGTERM (or SIGINT), which arq turns into cancelling
its main task, ends it during the wait with exit code 0.

Both exits are ``os._exit`` after the log is flushed. Nothing has started yet (no job, no bridge, no
user hook), so there is nothing to clean up, while raising instead would run arq's own shutdown,
whose first command waits for this same Redis again (a SIGTERMed worker lived 55 s that way).
"""

from __future__ import annotations

import asyncio
import logging
import os

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from relay.core.redis import RedisTarget, async_client, describe, failure

log = logging.getLogger("worker.startup")

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0
CONNECT_TIMEOUT = 2.0

EXIT_FATAL = 1
EXIT_STOPPED = 0


class StartupWait:
    """Run once, by the first connection a worker's pool hands out (`worker.connection`)."""

    def __init__(self, target: RedisTarget) -> None:
        self.target = target
        self._done = False
        self._lock = asyncio.Lock()

    async def passed(self) -> None:
        if self._done:
            return
        async with self._lock:  # arq's first commands may ask for connections at once: one waits
            if not self._done:
                await self._wait()
                self._done = True

    async def _wait(self) -> None:
        where = describe(self.target)
        delay = FIRST_RETRY_SECONDS
        probe = async_client(self.target, socket_connect_timeout=CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 0))
        try:
            while True:
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT * 2):
                        await probe.ping()
                    if delay > FIRST_RETRY_SECONDS:
                        log.info("Redis at %s answers", where)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    why = failure(error)
                    if why.fatal:
                        _exit(EXIT_FATAL, f"cannot use Redis at {where}: {why.reason}; {why.advice()}")
                    log.warning(
                        "cannot reach Redis at %s: %s; next try in %.1f s",
                        where, why.reason, delay, extra={"redis": where, "reason": why.kind},
                    )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(MAX_RETRY_SECONDS, delay * 2)
        except asyncio.CancelledError:
            # arq's SIGTERM (or SIGINT) handler cancels its main task, which is waiting here.
            _exit(EXIT_STOPPED, "stopped while waiting for Redis", level=logging.INFO)
        finally:
            await probe.aclose()


def _exit(code: int, line: str, level: int = logging.ERROR) -> None:
    log.log(level, line)
    logging.shutdown()
    os._exit(code)
