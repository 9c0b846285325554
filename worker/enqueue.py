"""Put handler jobs on the arq queue, and settle their source, in one atomic Redis call.

The bridge enqueues one job per (entry, handler) and acknowledges the entries in the same Lua script,
so an entry is never acknowledged unless its jobs exist, and a batch costs one round trip. Dead-letter
replay uses the same script to delete the dead letter only together with the job that replaces it.

Every job calls the one arq function `RUN_HANDLER` with ``(handler, entry id, event type, raw body,
received ms)``: the handler is an argument, not the function name, so a worker that lacks it (another
version, during a rolling deploy) still takes the job and defers it instead of arq dropping it as
"function not found" (see `worker.jobs`).

The jobs are arq's own: the payload comes from `arq.jobs.serialize_job` and the keys from
`arq.constants`. Like `ArqRedis.enqueue_job`, a job id that is queued, running, waiting for a retry
(all three are in the queue's sorted set) or still has a result is not enqueued again. That is what
makes an entry moved twice (claimed from a dead consumer after its jobs were queued) produce no
second job. Unlike it, the check looks at the queue rather than the job key, so a script that
failed halfway (a job key written, its queue entry not) is repaired by the next attempt, not skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis
from redis.typing import EncodableT

from relay.core.keys import StoredEvent
from worker.keys import ARQ_QUEUE

ENQUEUE_SCRIPT = """
local queue, score, expires_ms, finish, group = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = tonumber(ARGV[5])
local created = 0
for i = 1, n do
  local job_key, result_key, job_id = KEYS[1 + 2 * i], KEYS[2 + 2 * i], ARGV[4 + 2 * i]
  if redis.call('EXISTS', result_key) == 0 and not redis.call('ZSCORE', queue, job_id) then
    redis.call('PSETEX', job_key, expires_ms, ARGV[5 + 2 * i])
    redis.call('ZADD', queue, score, job_id)
    created = created + 1
  end
end
local first = 6 + 2 * n
if #ARGV >= first then
  if finish == 'XACK' then
    redis.call('XACK', KEYS[2], group, unpack(ARGV, first))
  elseif finish == 'XDEL' then
    redis.call('XDEL', KEYS[2], unpack(ARGV, first))
  end
end
return created
"""
"""KEYS: the queue, the stream to settle, then a job key and a result key per job.
ARGV: score, expiry ms, 'XACK' | 'XDEL' | '', group, job count, then an id and payload per job, then
the stream entry ids to settle. Returns how many jobs were new."""


RUN_HANDLER = "relay.run_handler"
"""The arq function name of every handler job. Pinned: queued jobs and other worker versions rely on it."""


class RawBody(bytes):
    """An event body as a job argument: arq logs each job's arguments, and this keeps the body out."""

    def __repr__(self) -> str:
        return f"<body {len(self)} bytes>"


def handler_job_id(event_id: str, handler: str) -> str:
    """The job id of one handler's run for one entry: the same however often the entry is moved."""
    return f"{event_id}:{handler}"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One arq job to enqueue: the arq `function` to call and its `args`."""

    job_id: str
    function: str
    args: tuple[Any, ...]

    @property
    def handler(self) -> str:
        """The handler this job runs (the first of `RUN_HANDLER`'s arguments)."""
        return str(self.args[0])

    @property
    def event_id(self) -> str:
        return str(self.args[1])

    @classmethod
    def for_event(cls, event: StoredEvent, handler: str, *, job_id: str | None = None) -> JobSpec:
        """The job running `handler` for `event`; `job_id` overrides the id (a replay needs a new one)."""
        return cls(
            job_id=job_id or handler_job_id(event.entry_id, handler),
            function=RUN_HANDLER,
            args=(handler, event.entry_id, event.type, RawBody(event.body), event.received_ms),
        )


@dataclass(frozen=True, slots=True)
class Settle:
    """What to do with stream entries once their jobs exist: acknowledge them or delete them."""

    op: Literal["XACK", "XDEL"]
    stream: str
    ids: Sequence[str]
    group: str = ""


async def enqueue(
    redis: Redis,
    jobs: Sequence[JobSpec],
    *,
    now_ms: int,
    expires_ms: int,
    settle: Settle | None = None,
    queue: str = ARQ_QUEUE,
) -> int:
    """Enqueue `jobs` due now, then `settle` the entries, atomically. Returns how many jobs were new.

    `expires_ms` is how long a job may wait in the queue (arq's ``_expires``): the bridge passes the
    retention period, so a job outlives any outage of the workers.
    """
    keys: list[str] = [queue, settle.stream if settle else queue]
    args: list[EncodableT] = [
        now_ms,
        expires_ms,
        settle.op if settle else "",
        settle.group if settle else "",
    ]
    args.append(len(jobs))
    for job in jobs:
        keys += [job_key_prefix + job.job_id, result_key_prefix + job.job_id]
        args += [job.job_id, serialize_job(job.function, job.args, {}, None, now_ms)]
    if settle:
        args += list(settle.ids)
    return int(await redis.register_script(ENQUEUE_SCRIPT)(keys, args))
