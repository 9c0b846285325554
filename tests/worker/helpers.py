"""Test helpers for the workers: store events as the edge does, run a burst worker, read results."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import redis
from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import WatchError

from relay.core.events import dedupe_key, parse
from relay.core.keys import DEAD_STREAM, EVENTS_STREAM, INGEST_SCRIPT, dedupe_redis_key
from relay.core.settings import Settings
from worker.bridge import Bridge, Dispatched
from worker.connection import ResilientArqRedis
from worker.deadletter import DeadLetter, list_dead
from worker.main import Hooks, WorkerOptions, build_worker_settings
from worker.registry import Registry, default_registry

_users = itertools.count(100000000000000000)


def vote_body(**fields: Any) -> bytes:
    """A compact VOTE_ADD body, a new voter each call so that no two bodies are deduplicated."""
    data = {"event": "VOTE_ADD", "guild_id": "111111111111111111", "user_id": str(next(_users))}
    data.update(fields)
    return json.dumps(data, separators=(",", ":")).encode()


def review_body(stars: int = 5) -> bytes:
    user = str(next(_users))
    data = {
        "event": "REVIEW_ADD",
        "guild_id": "111111111111111111",
        "user_id": user,
        "review": {
            "id": user,
            "published_timestamp": 1718000000000,
            "stars": stars,
            "content": {"title": "Great server", "description": "Friendly people"},
        },
    }
    return json.dumps(data, separators=(",", ":")).encode()


def unknown_body() -> bytes:
    return json.dumps({"event": "GUILD_BOOST", "guild_id": "1", "boosts": next(_users)}).encode()


async def store(redis: Redis, body: bytes) -> str:
    """Append `body` to the stream exactly as the edge does (dedupe + XADD in INGEST_SCRIPT)."""
    event = parse(body)
    key = dedupe_key(event, body)
    received_ms = int(time.time() * 1000)
    stored, entry_id = await redis.register_script(INGEST_SCRIPT)(
        [dedupe_redis_key(key), EVENTS_STREAM], [3600, event.event, body, received_ms, key]
    )
    assert stored == 1, "test bodies must be unique"
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def store_sync(client: redis.Redis, body: bytes) -> str:
    """`store` for synchronous tests (those driving worker processes)."""
    event = parse(body)
    key = dedupe_key(event, body)
    args = [3600, event.event, body, int(time.time() * 1000), key]
    stored, entry_id = client.eval(INGEST_SCRIPT, 2, dedupe_redis_key(key), EVENTS_STREAM, *args)  # type: ignore[arg-type]
    assert stored == 1, "test bodies must be unique"
    return str(entry_id.decode())


def inprocess_options(**overrides: Any) -> WorkerOptions:
    """Worker options for in-process runs: no background bridge, pytest's logging."""
    values: dict[str, Any] = {"run_bridge": False, "configure_logging": False, "poll_delay": 0.005}
    values.update(overrides)
    return WorkerOptions(**values)


async def run_burst(settings: Settings, registry: Registry, hooks: Hooks | None = None) -> Worker:
    """Run an arq worker in burst mode until its queue is empty (retries included), then close it."""
    kwargs = build_worker_settings(settings, registry, hooks, inprocess_options())
    worker = Worker(**kwargs, burst=True, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker


def registry_of(module: ModuleType) -> Registry:
    """The handlers `module` registered in the default registry (a tasks module under test)."""
    registry = Registry()
    for handler in default_registry:
        if handler.func.__module__ == module.__name__:
            registry.add(handler)
    return registry


async def handle_with(redis: Redis, settings: Settings, module: ModuleType, *bodies: bytes) -> list[str]:
    """Store `bodies`, then run them through `module`'s handlers and hooks: bridge, then a burst worker."""
    ids = [await store(redis, body) for body in bodies]
    registry = registry_of(module)
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry, Hooks.from_module(module))
    return ids


async def bridge_all(bridge: Bridge) -> Dispatched:
    """Step `bridge` until the stream has nothing new for it; returns the totals."""
    entries = jobs = unhandled = 0
    while True:
        step = await bridge.step()
        if not step.entries:
            return Dispatched(entries=entries, jobs=jobs, unhandled=unhandled)
        entries += step.entries
        jobs += step.jobs
        unhandled += step.unhandled


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `check` until it holds; fail after `within` seconds (a bound, not an expected duration)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def until(check: Callable[[], Any], within: float, what: str) -> Any:
    """Poll `check` until it returns something truthy and return that; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what}: not within {within}s"
        time.sleep(0.02)
    return result


def dead_letters_sync(client: redis.Redis) -> list[DeadLetter]:
    return [DeadLetter.from_entry(i, f) for i, f in client.xrange(DEAD_STREAM)]


async def dead_letters(redis: Redis) -> list[DeadLetter]:
    return await list_dead(redis, count=1000)


async def stream_length(redis: Redis, stream: str = EVENTS_STREAM) -> int:
    return int(await redis.xlen(stream))


async def dead_count(redis: Redis) -> int:
    return await stream_length(redis, DEAD_STREAM)


async def arq_poll(redis: ResilientArqRedis, now: int = 20_000) -> list[str]:
    """arq 0.28's poll (Worker._poll_iteration) of the client's queue, with `now` as arq's clock."""
    queue = redis.default_queue_name
    return [
        j.decode() for j in await redis.zrangebyscore(queue, min=float("-inf"), start=0, num=500, max=now)
    ]


async def arq_claim(redis: ResilientArqRedis, job_id: str) -> tuple[bool, int, float | None]:
    """arq 0.28's claim (Worker.start_jobs), step for step; commits only what arq would commit."""
    key = in_progress_key_prefix + job_id
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(key)
        ongoing = await pipe.exists(key)
        score = await pipe.zscore(redis.default_queue_name, job_id)
        if ongoing or not score:
            return False, ongoing, score
        pipe.multi()
        pipe.psetex(key, 60_000, b"1")
        try:
            await pipe.execute()
        except WatchError:
            return False, ongoing, score
        return True, ongoing, score
