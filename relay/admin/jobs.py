"""Bulk actions the page runs in the background (replay or delete all that match), with their progress.

A replay goes through `relay.ops.deadletters.replay_letters`, the code of ``relay dlq replay``: the same
event id, the same rate limit. If Redis fails halfway the job says how far it got; every dead letter
not reached is still there, whole (each replay is one atomic step).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.core.keys import DEAD_STREAM
from relay.ops.deadletters import ReplayReport, replay_letters
from relay.ops.pacing import DEFAULT_RATE
from worker.deadletter import DeadLetter
from worker.registry import Registry

KEPT = 50
"""Finished jobs remembered for their progress pages; older ones are forgotten."""
DELETE_BATCH = 500


@dataclass
class BulkJob:
    id: str
    action: str
    """``replay`` or ``delete``."""
    described: str
    total: int
    done: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    finished: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "action": self.action,
            "filter": self.described,
            "total": self.total,
            "done": self.done,
            "refused": [{"id": i, "reason": r} for i, r in self.refused],
            "error": self.error,
            "finished": self.finished,
        }


async def replay_all(
    redis: Redis, job: BulkJob, letters: list[DeadLetter], registry: Registry, tasks: str, expires_ms: int
) -> None:
    report = ReplayReport()

    def advance(n: int) -> None:
        job.done += n

    try:
        await replay_letters(
            redis,
            letters,
            registry=registry,
            tasks=tasks,
            rate=DEFAULT_RATE,
            expires_ms=expires_ms,
            report=report,
            advance=advance,
        )
    finally:
        job.refused = report.refused


async def delete_all(redis: Redis, job: BulkJob, letters: list[DeadLetter]) -> None:
    ids = [letter.id for letter in letters]
    for start in range(0, len(ids), DELETE_BATCH):
        batch = ids[start : start + DELETE_BATCH]
        await redis.xdel(DEAD_STREAM, *batch)
        job.done += len(batch)


class Jobs:
    """The bulk jobs of this process, newest last; at most `KEPT` finished ones are remembered."""

    def __init__(self, describe_failure: Callable[[Exception], str]) -> None:
        self._jobs: OrderedDict[str, BulkJob] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._describe = describe_failure

    def get(self, job_id: str) -> BulkJob | None:
        return self._jobs.get(job_id)

    def start(
        self, action: str, described: str, total: int, work: Callable[[BulkJob], Awaitable[None]]
    ) -> BulkJob:
        job = BulkJob(secrets.token_hex(8), action, described, total)
        self._jobs[job.id] = job
        finished = [j for j in self._jobs.values() if j.finished]
        for old in finished[: max(0, len(finished) - KEPT)]:
            del self._jobs[old.id]

        async def run() -> None:
            try:
                await work(job)
            except (RedisError, OSError) as exc:
                job.error = self._describe(exc)
            finally:
                job.finished = True

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
