"""``ctx["later"]``: run another handler for the same event after a delay (a deferred arq job).

For work that must happen some time after an event, such as taking back a role given for 12 hours::

    await ctx["later"]("remove-voter-role", hours(12))

The job is an ordinary handler job in Redis (it survives restarts), due after `delay` seconds, with
the id ``<event id>:<handler>``: scheduling it twice for one event queues it once. The handler named
must be registered for the event's type, usually with ``scheduled=True`` so new events do not queue
it on their own.
"""

from __future__ import annotations

from arq.utils import timestamp_ms
from redis.asyncio import Redis

from relay.core.keys import StoredEvent
from worker.enqueue import JobSpec, enqueue
from worker.registry import WILDCARD, Registry


class Later:
    """``ctx["later"]`` for one run: schedules handlers of `registry` for `event`."""

    def __init__(self, redis: Redis, registry: Registry, event: StoredEvent, retention_ms: int) -> None:
        self._redis, self._registry, self._event, self._retention_ms = redis, registry, event, retention_ms

    async def __call__(self, handler: str, delay: float) -> bool:
        """Run `handler` for this event in `delay` seconds; False if it was already scheduled."""
        found = self._registry.get(handler)
        if found is None:
            raise ValueError(f'ctx["later"]: no handler named {handler!r}')
        if self._event.type not in found.event_types and WILDCARD not in found.event_types:
            raise ValueError(f'ctx["later"]: handler {handler!r} does not take {self._event.type} events')
        if not delay >= 0:
            raise ValueError(f'ctx["later"]: delay must be >= 0 seconds, got {delay!r}')
        delay_ms = int(delay * 1000)
        job = JobSpec.for_event(self._event, handler)
        # The job waits `delay`, then may wait in the queue as long as any job does (the retention).
        return (
            await enqueue(
                self._redis, [job], now_ms=timestamp_ms() + delay_ms, expires_ms=delay_ms + self._retention_ms
            )
            == 1
        )


def hours(count: float) -> float:
    """`count` hours in seconds, for ``ctx["later"]``."""
    return count * 3600.0
