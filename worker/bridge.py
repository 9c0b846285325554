"""The bridge: reads ``relay:events`` as one consumer of the ``relay:workers`` group and turns each entry
into one arq job per matching handler.

- An entry is acknowledged only in the same atomic step that enqueues its jobs (`worker.enqueue`),
  so a crash leaves it pending, never acknowledged without jobs.
- Entries a dead consumer left pending longer than ``claim_idle_seconds`` are claimed (XAUTOCLAIM)
  and dispatched again; job ids ``<entry id>:<handler>`` make that a no-op for jobs that exist.
- Flow control: each bridge reads only what its own worker can start soon: while ``own_jobs`` of the
  jobs it queued still wait for its worker (`worker.claim.Claims.waiting`), it reads nothing new, so
  a burst is shared among the workers instead of one bridge taking a batch the others wait a second
  to steal. And while the arq queue holds ``high_water`` jobs due now, no bridge reads (claims, rare
  and bounded, still run). The stream is the buffer; the arq queue stays short, and its jobs never
  expire while they wait (they live as long as the stream's retention).
- An entry no handler wants is logged, counted and acknowledged. An entry missing its fields
  (written by something other than the edge) is dead-lettered with no handler, then acknowledged.
- Redis errors are logged and retried with backoff; the bridge does not die with Redis.
- Only live consumers stay in the group: with each claim, a consumer idle for ``claim_idle_seconds``
  that holds nothing and has no live heartbeat (a killed worker's) is removed (`forget_idle_consumers`).
- It also runs the periodic retention trim (`worker.retention`), and every few seconds reads the
  group's lag and pending count for the worker's metrics (`check_backlog`, one round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from arq.utils import timestamp_ms
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relay.core.heartbeat import live_heartbeats
from relay.core.keys import CONSUMER_GROUP, DEAD_STREAM, EVENTS_STREAM, F_BODY, F_TYPE, StoredEvent, as_text
from relay.core.settings import Settings
from worker import deadletter
from worker.connection import ResilientArqRedis
from worker.deadletter import Failure
from worker.enqueue import JobSpec, Settle, enqueue
from worker.keys import ARQ_QUEUE
from worker.registry import Registry
from worker.retention import trim_events

log = logging.getLogger("worker.bridge")

Entry = tuple[bytes, dict[bytes, bytes]]

MALFORMED = "MalformedEntry"

FORGET_IDLE_CONSUMER_SCRIPT = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""
"""Delete a consumer only if it holds no pending entry, atomically (deleting one drops its entries).
KEYS: the stream. ARGV: group, consumer. Returns -1 when the consumer still holds entries."""


def consumer_name() -> str:
    """Unique per process and start: ``<host>-<pid>-<random>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    """Tuning of the bridge; the defaults suit short handlers."""

    read_count: int = 100
    """Entries read (or claimed) per step."""
    block_ms: int = 1000
    """How long one read waits for new entries; also bounds how long stopping takes."""
    high_water: int = 200
    """Jobs due in the arq queue (running ones included) at which the bridge stops reading. Short,
    because every arq worker scans the due jobs on each poll."""
    full_pause_seconds: float = 0.02
    """Pause before looking at a full queue again."""
    own_jobs: int | None = None
    """Jobs this bridge keeps waiting for its own worker, at most (a read may add one entry's jobs
    past it); None: no limit of its own. The worker sets twice ``RELAY_WORKER_CONCURRENCY``: one
    round running, one waiting."""
    own_pause_seconds: float = 1.0
    """Longest wait for the worker to take one of its jobs before looking again (it is woken sooner)."""
    claim_every_seconds: float | None = None
    """How often to look for entries a dead consumer left; default: half of ``claim_idle_seconds``."""
    trim_every_seconds: float = 60.0
    backlog_every_seconds: float = 5.0
    """How often to read the group's lag and pending count for the metrics (`Bridge.check_backlog`)."""


@dataclass(slots=True)
class BridgeStats:
    """Counters since start, for logs and metrics."""

    entries: int = 0
    claimed: int = 0
    jobs: int = 0
    unhandled: int = 0
    malformed: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Backlog:
    """The consumer group's backlog, shared by every worker, as one look at Redis saw it."""

    lag: int | None
    """Entries not yet read by the group; None when Redis cannot tell (entries deleted mid-stream)."""
    pending: int
    """Entries read by a worker but not yet acknowledged."""
    dead_letters: int
    """Entries in ``relay:dead``."""


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What one step did."""

    entries: int = 0
    jobs: int = 0
    unhandled: int = 0


class Bridge:
    """One consumer of ``relay:workers`` feeding arq. Drive it with `run`, or step it in tests."""

    def __init__(
        self,
        redis: Redis,
        registry: Registry,
        settings: Settings,
        *,
        consumer: str | None = None,
        options: BridgeOptions | None = None,
        queue: str = ARQ_QUEUE,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.settings = settings
        self.consumer = consumer or consumer_name()
        self.options = options or BridgeOptions()
        self.queue = queue
        self.stats = BridgeStats()
        self.backlog: Backlog | None = None
        """The last `check_backlog` result, for the metrics."""
        self.queue_due: int | None = None
        """Jobs due in the arq queue at the last `queue_is_full` (a look the bridge makes anyway)."""
        self._stop = asyncio.Event()
        self._taken = asyncio.Event()
        """Set when the worker took a job this bridge queued, or the bridge is stopping."""
        self._group_ready = False
        if self.options.own_jobs is not None and isinstance(redis, ResilientArqRedis) and redis.tracks_claims:
            redis.claims.on_fewer_waiting = self._taken.set

    # -- the steps -----------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless they exist, and join it.

        A new group starts at id 0, so entries stored before any worker ever ran are handled too.
        Joining at once (rather than at the first entry read) shows the worker in ``relay stats``.
        """
        try:
            await self.redis.xgroup_create(EVENTS_STREAM, CONSUMER_GROUP, id="0", mkstream=True)
            log.info("created consumer group %s on %s", CONSUMER_GROUP, EVENTS_STREAM)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self.redis.xgroup_createconsumer(EVENTS_STREAM, CONSUMER_GROUP, self.consumer)
        self._group_ready = True

    async def queue_is_full(self) -> bool:
        """Whether the arq queue holds ``high_water`` jobs due now (deferred retries do not count)."""
        due = self.queue_due = int(await self.redis.zcount(self.queue, "-inf", timestamp_ms()))
        return due >= self.options.high_water

    async def check_backlog(self) -> Backlog:
        """Read the group's lag and pending count and the dead-letter count, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xinfo_groups(EVENTS_STREAM)
            pipe.xlen(DEAD_STREAM)
            groups, dead = await pipe.execute()
        group = next((g for g in groups if g["name"] in (CONSUMER_GROUP, CONSUMER_GROUP.encode())), None)
        if group is None:  # deleted under us; the next step creates it again
            self.backlog = None
            return Backlog(lag=None, pending=0, dead_letters=int(dead))
        lag = group.get("lag")
        self.backlog = Backlog(
            lag=None if lag is None else int(lag), pending=int(group["pending"]), dead_letters=int(dead)
        )
        return self.backlog

    def own_room(self) -> int | None:
        """How many more jobs this bridge may queue for its worker now; None: no limit of its own."""
        if self.options.own_jobs is None:
            return None
        if not isinstance(self.redis, ResilientArqRedis) or not self.redis.tracks_claims:
            return None  # the fallback's plain arq polls say nothing of which jobs were taken
        return self.options.own_jobs - self.redis.claims.waiting_count()

    async def step(self, block_ms: int | None = None, count: int | None = None) -> Dispatched:
        """Read new entries once (at most `count`, default ``read_count``; waiting up to `block_ms` for
        some) and dispatch them."""
        if not self._group_ready:
            await self.ensure_group()
        response = await self.redis.xreadgroup(
            CONSUMER_GROUP,
            self.consumer,
            {EVENTS_STREAM: ">"},
            count=min(count or self.options.read_count, self.options.read_count),
            block=block_ms,
        )
        entries: list[Entry] = [
            entry for _stream, stream_entries in response or [] for entry in stream_entries
        ]
        return await self.dispatch(entries)

    async def claim(self, min_idle_ms: int | None = None) -> int:
        """Take over entries pending longer than `min_idle_ms` (default: the claim idle setting) and
        dispatch them. Returns how many were claimed."""
        if min_idle_ms is None:
            min_idle_ms = int(self.settings.claim_idle_seconds * 1000)
        if not self._group_ready:
            await self.ensure_group()
        start: bytes | str = "0-0"
        claimed = 0
        for _ in range(100):  # bounded: at most 100 batches per call
            next_start, entries, *rest = await self.redis.xautoclaim(
                EVENTS_STREAM,
                CONSUMER_GROUP,
                self.consumer,
                min_idle_ms,
                start_id=start,
                count=self.options.read_count,
            )
            present = [(entry_id, fields) for entry_id, fields in entries if entry_id is not None and fields]
            if rest and rest[0]:
                log.warning(
                    "%d pending entries were deleted from %s before being handled",
                    len(rest[0]),
                    EVENTS_STREAM,
                )
            if present:
                log.info("claimed %d entries left pending by a stopped or dead worker", len(present))
                await self.dispatch(present)
                claimed += len(present)
            start = next_start
            if start in (b"0-0", "0-0"):
                break
        self.stats.claimed += claimed
        return claimed

    async def dispatch(self, entries: Sequence[Entry]) -> Dispatched:
        """Enqueue one job per (entry, handler) and acknowledge the entries, in one atomic call."""
        if not entries:
            return Dispatched()
        jobs: list[JobSpec] = []
        ids: list[str] = []
        unhandled = 0
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            ids.append(entry_id)
            try:
                event = StoredEvent.from_entry(raw_id, fields)
            except (KeyError, ValueError) as exc:
                await self._dead_letter_malformed(entry_id, fields, exc)
                continue
            handlers = self.registry.for_type(event.type)
            if not handlers:
                unhandled += 1
                log.info(
                    "no handler for %s event %s; acknowledged",
                    event.type, entry_id, extra={"entry_id": entry_id, "event_type": event.type},
                )  # fmt: skip
                continue
            jobs += [JobSpec.for_event(event, handler.name) for handler in handlers]
        await enqueue(
            self.redis,
            jobs,
            now_ms=timestamp_ms(),
            expires_ms=self.settings.retention_ms,
            settle=Settle("XACK", EVENTS_STREAM, ids, group=CONSUMER_GROUP),
            queue=self.queue,
        )
        if isinstance(self.redis, ResilientArqRedis):  # the worker's own client: it runs these first
            self.redis.claims.queued(job.job_id for job in jobs)
            if jobs:
                self.redis.pacer.wake()  # arq's poll may be pausing on an idle queue
        self.stats.entries += len(ids)
        self.stats.jobs += len(jobs)
        self.stats.unhandled += unhandled
        return Dispatched(entries=len(ids), jobs=len(jobs), unhandled=unhandled)

    async def _dead_letter_malformed(self, entry_id: str, fields: dict[bytes, bytes], exc: Exception) -> None:
        self.stats.malformed += 1
        event = StoredEvent(
            entry_id=entry_id,
            type=fields.get(F_TYPE.encode(), b"").decode(errors="replace"),
            body=fields.get(F_BODY.encode(), b""),
            received_ms=0,
            dedupe="",
        )
        failure = Failure(MALFORMED, f"stream entry lacks a valid field: {exc!r}")
        dead_id = await deadletter.write(
            self.redis, event, handler="", attempts=0, failure=failure, now_ms=timestamp_ms()
        )
        log.error(
            "entry %s is malformed (%r); dead letter %s", entry_id, exc, dead_id, extra={"entry_id": entry_id}
        )

    async def forget_idle_consumers(self) -> int:
        """Remove the consumers of stopped or killed workers: idle for ``claim_idle_seconds``, holding
        nothing, without a live heartbeat (`relay.core.heartbeat`). Returns how many."""
        limit_ms = self.settings.claim_idle_seconds * 1000
        idle = [
            as_text(info["name"])
            for info in await self.redis.xinfo_consumers(EVENTS_STREAM, CONSUMER_GROUP)
            if int(info["pending"]) == 0
            and int(info["idle"]) >= limit_ms
            and as_text(info["name"]) != self.consumer
        ]
        if not idle:
            return 0
        live = {beat.name for beat in await live_heartbeats(self.redis, idle)}
        removed = 0
        for name in idle:
            if name not in live and await self._forget_consumer(name) >= 0:
                removed += 1
        if removed:
            log.info("removed %d consumer(s) of stopped workers from %s", removed, CONSUMER_GROUP)
        return removed

    async def _forget_consumer(self, name: str) -> int:
        forget = self.redis.register_script(FORGET_IDLE_CONSUMER_SCRIPT)
        return int(await forget([EVENTS_STREAM], [CONSUMER_GROUP, name]))

    # -- the loop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Take no more entries; `run` returns after the step in progress (at most ``block_ms``)."""
        self._stop.set()
        self._taken.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _wait_for_room(self) -> None:
        """Wait until the worker takes one of this bridge's jobs (or `own_pause_seconds` pass)."""
        self._taken.clear()
        room = self.own_room()
        if room is not None and room <= 0 and not self.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._taken.wait(), self.options.own_pause_seconds)

    async def run(self) -> None:
        """Read, claim and trim until `stop`; survive Redis errors."""
        loop = asyncio.get_running_loop()
        claim_every = self.options.claim_every_seconds or self.settings.claim_idle_seconds / 2
        next_claim = next_trim = next_backlog = loop.time()  # at start: pick up what a previous run left
        failures = 0
        log.info("bridge %s reading %s", self.consumer, EVENTS_STREAM)
        while not self.stopping:
            try:
                now = loop.time()
                if now >= next_claim:
                    next_claim = now + claim_every
                    await self.claim()
                    await self.forget_idle_consumers()
                if now >= next_trim:
                    next_trim = now + self.options.trim_every_seconds
                    await trim_events(self.redis, self.settings.retention_ms)
                if now >= next_backlog:
                    next_backlog = now + self.options.backlog_every_seconds
                    await self.check_backlog()
                room = self.own_room()
                if room is not None and room <= 0:
                    await self._wait_for_room()
                    continue
                if await self.queue_is_full():
                    await self._pause(self.options.full_pause_seconds)
                    continue
                await self.step(block_ms=self.options.block_ms, count=self._entries_for(room))
                failures = 0
            except Exception as exc:
                failures += 1
                self.stats.errors += 1
                if "NOGROUP" in str(exc):  # the stream or group was deleted under us: create it again
                    self._group_ready = False
                wait = min(5.0, 0.1 * 2**failures)
                log.warning("bridge error (%r), retrying in %.1fs", exc, wait, exc_info=failures == 1)
                await self._pause(wait)
        log.info("bridge %s stopped taking entries", self.consumer)

    def _entries_for(self, room: int | None) -> int | None:
        """Entries to read for `room` jobs: each entry becomes one job per handler of its type."""
        if room is None:
            return None
        return max(1, room // self.registry.widest())

    async def close(self) -> None:
        """Leave the group if nothing is pending for this consumer (else another worker claims it)."""
        with contextlib.suppress(Exception):
            await self._forget_consumer(self.consumer)
