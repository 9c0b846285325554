"""arq's claim of a job, and the reads its run starts with, in one round trip instead of three; and
a poll that skips jobs already in progress and tries this worker's own jobs first.

How and why, with the arq 0.28 internals it stands on: docs/INTERNALS.md, "worker/claim.py".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

RETRY_KEY_SECONDS = 88400
"""arq's expiry of a job's try counter (``Worker.run_job``)."""

CLAIM_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[3]) then return false end
redis.call('PSETEX', KEYS[1], ARGV[2], '1')
local job = redis.call('GET', KEYS[3])
local try = redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[4])
return {job, try}
"""
"""KEYS: in-progress key, queue, job key, retry key. ARGV: job id, in-progress ms, now ms, retry key
seconds. Returns nil when the job is in progress, gone or not due (arq's reads say so), else
``{job payload or nil, try}``."""

POLL_SCRIPT = """
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES', 'LIMIT', ARGV[3], ARGV[4])
local due = {#found / 2}
for i = 1, #found, 2 do
  if redis.call('EXISTS', ARGV[5] .. found[i]) == 0 then
    due[#due + 1] = found[i]
    due[#due + 1] = found[i + 1]
  end
end
return due
"""
"""KEYS: the queue. ARGV: min and max score, offset, count (arq's poll), in-progress key prefix. Returns
how many jobs the range listed, then job id, score, job id, score, ... for those not in progress. (It reads keys it is
not given, as arq's own Lua does not; fine on a single Redis server, which is what arq supports.)"""

MINE_KEPT = 10_000
"""Job ids a worker remembers as its own (the oldest are forgotten first)."""

STEAL_AFTER_MS = 1000
"""How long a job must have been due before a worker other than its own tries it. Longer than a job
waits in a busy worker's queue (the bridge keeps it short), so two busy workers do not race; short
against how long the job of a worker that died waits anyway (see the README on crashed runs)."""

WAITING_FORGET_SECONDS = 5.0
"""A job the bridge queued for this worker counts as waiting for it at most this long, when no poll
could tell where it went (polls cut short by arq's limit); see `Claims.waiting`."""

Command = tuple[Any, ...]
Stacked = tuple[Command, Mapping[str, Any]]
"""A command as redis-py's pipeline stacks it: its arguments and options."""


@dataclass
class Claims:
    """What one worker's client knows about the jobs arq is claiming and starting."""

    due: dict[str, float] = field(default_factory=dict)
    """Job id → score, from arq's latest poll: the jobs it is about to claim."""
    fetched: dict[str, tuple[bytes | None, int]] = field(default_factory=dict)
    """Job id → (payload, try), read by a claim for the run that follows it."""
    mine: dict[str, None] = field(default_factory=dict)
    """Jobs this process's bridge queued or its worker claimed, oldest first (an ordered set, at most
    `MINE_KEPT`)."""
    waiting: dict[str, float] = field(default_factory=dict)
    """Jobs this process's bridge queued that its worker has not tried to claim yet, and no poll has
    shown gone: job id → when queued (`time.monotonic`). The bridge reads new entries only while
    these are few (`worker.bridge`), so each worker takes about what it can run, not a whole batch
    that other workers would wait a second to steal."""
    on_fewer_waiting: Callable[[], None] | None = None
    """Called when `waiting` shrinks (the bridge waits for it when its worker has enough)."""

    def queued(self, job_ids: Iterable[str], now: float | None = None) -> None:
        """Note jobs this process's bridge queued: this worker's own, waiting for it."""
        ids = list(job_ids)
        at = time.monotonic() if now is None else now
        self.waiting.update(dict.fromkeys(ids, at))
        self._remember(ids)

    def claimed(self, job_id: str) -> None:
        """This worker claimed `job_id`: its own, so a retry of it comes back here first."""
        self._remember([job_id])

    def tried(self, job_id: str) -> None:
        """This worker tried to claim `job_id`, won or lost: it no longer waits for this worker."""
        if self.waiting.pop(job_id, None) is not None and self.on_fewer_waiting is not None:
            self.on_fewer_waiting()

    def waiting_count(self, now: float | None = None) -> int:
        """Jobs still waiting for this worker, forgetting any waiting longer than `WAITING_FORGET_SECONDS`."""
        oldest = (time.monotonic() if now is None else now) - WAITING_FORGET_SECONDS
        while self.waiting and next(iter(self.waiting.values())) < oldest:
            del self.waiting[next(iter(self.waiting))]
        return len(self.waiting)

    def _remember(self, job_ids: Iterable[str]) -> None:
        self.mine.update(dict.fromkeys(job_ids))
        for _ in range(len(self.mine) - MINE_KEPT):
            del self.mine[next(iter(self.mine))]

    def polled(
        self,
        reply: Sequence[Any],
        now_ms: float,
        turn: Callable[[int], int],
        *,
        limit: int | None = None,
        sent: float | None = None,
    ) -> list[bytes]:
        """Remember a poll's due jobs (`POLL_SCRIPT`'s reply); return the ids to try, in order.

        This worker's own jobs first, then others' that have been due for `STEAL_AFTER_MS`; each
        part starts at ``turn(len(part))`` and wraps around. When the poll listed fewer than `limit`
        jobs (it saw the whole due part of the queue), a waiting job queued before the poll was
        `sent` (`time.monotonic`) that it did not list is gone from `waiting`: another worker took
        it, or it was never queued (a duplicate).
        """
        listed, flat = int(reply[0]), reply[1:]
        self.due = {flat[i].decode(): float(flat[i + 1]) for i in range(0, len(flat), 2)}
        if sent is not None and limit is not None and listed < limit:
            gone = [job for job, at in self.waiting.items() if at < sent and job not in self.due]
            for job in gone:
                del self.waiting[job]
            if gone and self.on_fewer_waiting is not None:
                self.on_fewer_waiting()
        own = [job for job in self.due if job in self.mine]
        others = [
            job
            for job, score in self.due.items()
            if job not in self.mine and score <= now_ms - STEAL_AFTER_MS
        ]
        return [job.encode() for part in (own, others) if part for job in _rotated(part, turn(len(part)))]


def _rotated(items: list[str], start: int) -> list[str]:
    return items[start:] + items[:start]


def claim_keys(job_id: str, queue: str) -> list[str]:
    return [in_progress_key_prefix + job_id, queue, job_key_prefix + job_id, retry_key_prefix + job_id]


def claimed_in_progress_ms(stack: Sequence[Stacked], in_progress_key: str) -> int | None:
    """The in-progress time of arq's claim, if `stack` is exactly that transaction, else None."""
    if len(stack) != 1:
        return None
    args, _ = stack[0]
    if len(args) != 4 or args[0] != "PSETEX" or args[1] != in_progress_key or not isinstance(args[2], int):
        return None
    return args[2]


def run_reads_job(stack: Sequence[Stacked]) -> str | None:
    """The job id, if `stack` is exactly the transaction arq's ``run_job`` starts with, else None."""
    if len(stack) != 3:
        return None
    (get, _), (incr, _), (expire, _) = stack
    if (
        len(get) != 2
        or get[0] != "GET"
        or not isinstance(get[1], str)
        or not get[1].startswith(job_key_prefix)
    ):
        return None
    job_id = get[1][len(job_key_prefix) :]
    retry_key = retry_key_prefix + job_id
    if incr != ("INCRBY", retry_key, 1) or expire != ("EXPIRE", retry_key, RETRY_KEY_SECONDS):
        return None
    return job_id
