"""The soak's I/O: a private Redis, the edge and one worker as processes, steady signed traffic, the
worker restarted every minute (SIGTERM and kill -9 in turn), and the measures `bench.soak.checks`
judges."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import redis
import redis.asyncio as aioredis
from pydantic import SecretStr

from bench.keys import SOAK_CALIBRATION_PREFIX
from bench.load import Signer, review_body
from bench.processes import RELAY_APP, Process, ProcessGroup, start_redis, start_uvicorn, start_worker
from bench.soak import checks
from bench.soak.tasks import SOAK_DIR_ENV, handled
from relay.core.heartbeat import live_heartbeats
from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM
from relay.core.settings import Settings
from relay.edge.signature import HEADER

SAMPLE_EVERY_S = 10.0
KEYS_SAMPLED = 500
"""Keys per family whose MEMORY USAGE is read; the mean times the count is the family's size."""
DRAIN_S = 180.0
"""After the traffic stops: how long the worker gets to handle what is left."""
CONSUMERS_S = 90.0
"""And how long the live worker gets to remove the consumer of the last killed one."""


@dataclass(frozen=True, slots=True)
class Options:
    minutes: float
    rate: float
    retention_s: int
    dedupe_s: int
    claim_idle_s: float
    restart_every_s: float
    directory: Path


@dataclass
class Traffic:
    """Signed REVIEW_ADD deliveries at a steady rate, from a thread; what the edge acknowledged."""

    base: str
    secret: bytes
    rate: float
    acknowledged: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="soak-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        signer, nonce, number = Signer(self.secret), random.randrange(10**7), 0
        started = time.monotonic()
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self._stop.is_set():
                due = started + number / self.rate
                if (wait := due - time.monotonic()) > 0:
                    self._stop.wait(wait)
                    continue
                body = review_body(number, nonce)
                number += 1
                headers = {HEADER: signer(body).decode(), "Content-Type": "application/json"}
                try:
                    answer = client.post("/webhook", content=body, headers=headers)
                except httpx.HTTPError:
                    self.errors += 1
                    continue
                if answer.status_code == 202:
                    self.acknowledged.append(answer.json()["id"])
                else:
                    self.refused[answer.status_code] += 1


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def scan_ttls(client: redis.Redis) -> list[tuple[str, int]]:
    keys = [key.decode() for key in client.scan_iter(count=1000)]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.ttl(key)
        ttls = pipe.execute()
    return [(key, int(ttl)) for key, ttl in zip(keys, ttls, strict=True) if ttl != -2]


def key_overhead(url: str, keys: int) -> float:
    """Bytes Redis uses per key with an expiry beyond what MEMORY USAGE reports, measured on `keys`
    keys of a scratch database (db 1), emptied again before the soak starts. As many keys as the
    plateau will hold: the hash tables' slots per key depend on how full they are."""
    client = redis.Redis.from_url(url.rsplit("/", 1)[0] + "/1")
    try:
        before = used_memory(client)
        with client.pipeline(transaction=False) as pipe:
            for number in range(keys):
                pipe.set(f"{SOAK_CALIBRATION_PREFIX}{number:020d}", b"x" * 200, ex=3600)
            pipe.execute()
        grown = used_memory(client) - before
        with client.pipeline(transaction=False) as pipe:
            for number in random.sample(range(keys), KEYS_SAMPLED):
                pipe.memory_usage(f"{SOAK_CALIBRATION_PREFIX}{number:020d}", samples=0)
            usages = [int(u) for u in pipe.execute()]
        client.flushdb()
    finally:
        client.close()
    return grown / keys - sum(usages) / len(usages)


def family_sizes(
    client: redis.Redis, families: list[checks.Family], keys: list[str], overhead: float
) -> list[checks.FamilySize]:
    """Each growing family's keys (stream entries for the stream) and memory (MEMORY USAGE)."""
    sizes = []
    for family in families:
        if family.pattern == EVENTS_STREAM:
            count = int(cast(int, client.xlen(EVENTS_STREAM)))
            used = int(cast(int, client.memory_usage(EVENTS_STREAM, samples=0) or 0))
            sizes.append(checks.FamilySize(family, count, used))
            continue
        members = [key for key in keys if checks.family_of(key) == family.pattern]
        sample = random.sample(members, min(KEYS_SAMPLED, len(members)))
        with client.pipeline(transaction=False) as pipe:
            for key in sample:
                pipe.memory_usage(key, samples=0)
            usages = [int(u) for u in pipe.execute() if u is not None]
        mean = sum(usages) / len(usages) if usages else 0.0
        sizes.append(checks.FamilySize(family, len(members), round(mean * len(members)), overhead))
    return sizes


def live_names(url: str, pids: set[int] | None = None) -> set[str]:
    """The workers with a live heartbeat (as `relay stats` and the bridge judge it); of the processes
    `pids` only, if given: a worker killed a moment ago still has one for a few seconds."""

    async def read() -> set[str]:
        client = aioredis.Redis.from_url(url)
        try:
            return {b.name for b in await live_heartbeats(client) if pids is None or b.pid in pids}
        finally:
            await client.aclose()

    return asyncio.run(read())


def consumer_names(client: redis.Redis) -> set[str]:
    infos = cast(list[dict[str, Any]], client.xinfo_consumers(EVENTS_STREAM, CONSUMER_GROUP))
    return {info["name"].decode() for info in infos}


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


@dataclass
class Result:
    options: Options
    seconds: float
    rate: float
    baseline: int
    key_overhead: float
    memory: list[tuple[float, int]]
    edge_rss: list[int]
    worker_rss: list[int]
    restarts: Counter[str]
    sizes: list[checks.FamilySize]
    counts: list[checks.KeyCount]
    predicted: float
    plateau_from_s: float
    verdicts: list[checks.Verdict]
    refused: dict[int, int]
    errors: int


def soak(options: Options, log: Callable[[str], None]) -> Result:
    soak_dir = options.directory
    secret = "soak-" + os.urandom(16).hex()
    with ProcessGroup(soak_dir, os.environ) as group:
        store = start_redis(group)
        settings = Settings(
            secret=SecretStr(secret),
            redis_url=store.url,
            retention_seconds=options.retention_s,
            dedupe_seconds=options.dedupe_s,
            claim_idle_seconds=options.claim_idle_s,
        )
        env = {
            "RELAY_SECRET": secret,
            "RELAY_REDIS_URL": store.url,
            "RELAY_RETENTION_SECONDS": str(options.retention_s),
            "RELAY_DEDUPE_SECONDS": str(options.dedupe_s),
            "RELAY_CLAIM_IDLE_SECONDS": str(options.claim_idle_s),
            "RELAY_TASKS": "bench.soak.tasks",
            "RELAY_WORKER_METRICS": "off",
            "RELAY_LOG_LEVEL": "WARNING",
            SOAK_DIR_ENV: str(soak_dir),
        }
        group.env.update(env)
        client = redis.Redis.from_url(store.url)
        edge, port = start_uvicorn(group, "edge", RELAY_APP)
        worker = start_worker(group, "worker")
        if not wait_for(lambda: bool(live_names(store.url)), 30):
            raise RuntimeError(f"the worker did not start; see {worker.log}")
        families = checks.growing_families(settings)
        overhead = key_overhead(store.url, checks.keys_at_plateau(options.rate, families))
        baseline = used_memory(client)
        traffic = Traffic(f"http://127.0.0.1:{port}", secret.encode(), options.rate)
        plateau_from = max(f.lifetime_s for f in families) + 60.0
        memory: list[tuple[float, int]] = []
        edge_rss: list[int] = []
        worker_rss: list[int] = []
        restarts: Counter[str] = Counter()
        log(
            f"soak: {options.minutes:g} min at {options.rate:g} events/s; retention {options.retention_s} s, "
            f"dedupe {options.dedupe_s} s, claim idle {options.claim_idle_s:g} s; the memory plateau is "
            f"read from {plateau_from:.0f} s; files in {soak_dir}"
        )
        started = time.monotonic()
        traffic.start()
        next_sample, next_restart, kill = started, started + options.restart_every_s, False
        end = started + options.minutes * 60
        while (now := time.monotonic()) < end:
            if now >= next_sample:
                next_sample += SAMPLE_EVERY_S
                memory.append((now - started, used_memory(client)))
                edge_rss.append(rss_bytes(edge.pid))
            if now >= next_restart:
                next_restart += options.restart_every_s
                worker_rss.append(rss_bytes(worker.pid))
                worker = restart(group, worker, kill)
                restarts["kill -9" if kill else "SIGTERM"] += 1
                kill = not kill
                log(
                    f"soak: {now - started:4.0f} s: {len(traffic.acknowledged)} acknowledged, Redis "
                    f"{checks.mib(memory[-1][1])}, edge RSS {checks.mib(edge_rss[-1])}; worker restarted"
                )
            time.sleep(0.2)
        traffic.stop()
        seconds = time.monotonic() - started
        rate = len(traffic.acknowledged) / seconds
        ttls = scan_ttls(client)  # at the plateau, before the drain lets keys expire
        sizes = family_sizes(client, families, [key for key, _ in ttls], overhead)
        counts = checks.count_keys(ttls)
        predicted = checks.predicted_plateau(rate, sizes, baseline)
        log("soak: traffic stopped; waiting for the worker to handle what is left")
        acked = set(traffic.acknowledged)
        wait_for(lambda: acked <= handled(soak_dir), DRAIN_S)
        running = {worker.pid}
        wait_for(lambda: consumer_names(client) == live_names(store.url, running), CONSUMERS_S)
        verdicts = [
            checks.handled_verdict(acked, handled(soak_dir)),
            checks.expiry_verdict(counts),
            checks.memory_verdict(checks.plateau_samples(memory, plateau_from), predicted),
            checks.rss_verdict("edge", edge_rss),
            checks.rss_verdict("worker", worker_rss),
            checks.consumers_verdict(consumer_names(client), live_names(store.url, running)),
        ]
        client.close()
    return Result(
        options, seconds, rate, baseline, overhead, memory, edge_rss, worker_rss, restarts, sizes, counts,
        predicted, plateau_from, verdicts, dict(traffic.refused), traffic.errors,
    )  # fmt: skip


def restart(group: ProcessGroup, worker: Process, kill: bool) -> Process:
    """Stop `worker` by kill -9 or by SIGTERM (waiting for it to finish), and start a new one."""
    if kill:
        worker.popen.kill()
    else:
        worker.popen.send_signal(signal.SIGTERM)
    try:
        worker.popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.popen.kill()
        worker.popen.wait(timeout=5)
    group.stop(worker)
    return start_worker(group, "worker")
