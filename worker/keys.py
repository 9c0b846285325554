"""The Redis keys only the workers use (the shared ones, and the entry layout, are in
`relay.core.keys`)."""

from __future__ import annotations

ARQ_QUEUE = "relay:queue"
"""The arq queue the bridge enqueues handler jobs on."""


FAILING_PREFIX = "relay:failing:"
"""``relay:failing:<job id>`` holds when a handler's job first failed, until it succeeds or is dead-lettered."""


SKIPPED_PREFIX = "relay:skipped:"
"""``relay:skipped:<job id>`` counts the runs of a job that met a worker without its handler (another
version's, during a rolling deploy) or without a free slot of it (``concurrency``): they are not
attempts. Gone once the job ends."""


def failing_redis_key(job_id: str) -> str:
    return FAILING_PREFIX + job_id


def skipped_redis_key(job_id: str) -> str:
    return SKIPPED_PREFIX + job_id


ONCE_PREFIX = "relay:once:"
"""``relay:once:<event id>:<handler>`` is a hash: one field per ``ctx["once"](name)`` effect done for
that event by that handler (value: when, in ms). It expires ``RELAY_RETENTION_SECONDS`` after the last
effect recorded, and ``--rerun-effects`` replays delete it."""


def once_redis_key(event_id: str, handler: str) -> str:
    return f"{ONCE_PREFIX}{event_id}:{handler}"
