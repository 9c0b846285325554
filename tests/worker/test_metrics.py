"""The workers' metrics: runs by handler and outcome after a real burst run, dead letters by reason,
the bridge's backlog gauges, the listener started and stopped with the worker, and two worker
processes on one host each serving their own.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path

import httpx
import pytest
import redis
from arq.worker import Worker
from prometheus_client import generate_latest
from redis.asyncio import Redis

from relay.core.events import ReviewAdd, VoteAdd
from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM
from relay.core.settings import Settings
from tests.conftest import SECRET, make_settings
from tests.support.redis_server import free_port
from tests.support.scrapes import Samples, parse, scrape, value
from tests.support.task_runs import runs
from tests.support.worker_process import WorkerProcess, worker_pool
from tests.worker.helpers import (
    bridge_all,
    inprocess_options,
    review_body,
    store,
    store_sync,
    until,
    vote_body,
)
from worker import Context, Permanent, Registry
from worker.bridge import Bridge, BridgeOptions
from worker.main import Hooks, Lifecycle, build_worker_settings
from worker.metrics import DEAD_REASONS, RUN_OUTCOMES, WorkerMetrics, serve_worker_metrics


def runs_by_outcome(samples: Samples, handler: str) -> dict[str, float]:
    counts = {o: value(samples, "relay_handler_runs_total", handler=handler, outcome=o) for o in RUN_OUTCOMES}
    return {outcome: count for outcome, count in counts.items() if count}


def outcome_registry() -> Registry:
    """The handlers of `tests.support.tasks_outcomes`, in a registry of the test's own."""
    registry = Registry()

    @registry.on(VoteAdd)
    async def succeed(ctx: Context, event: VoteAdd) -> None:
        pass

    @registry.on(VoteAdd, max_attempts=3, backoff=0)
    async def flaky(ctx: Context, event: VoteAdd) -> None:
        if ctx["attempt"] == 1:
            raise RuntimeError("fails on the first attempt")

    @registry.on(ReviewAdd, max_attempts=2, backoff=0)
    async def doomed(ctx: Context, event: ReviewAdd) -> None:
        raise RuntimeError("always fails")

    @registry.on(ReviewAdd)
    async def refuse(ctx: Context, event: ReviewAdd) -> None:
        raise Permanent("cannot ever work")

    return registry


EXPECTED_RUNS = {  # for two votes and one review
    "succeed": {"ok": 2},
    "flaky": {"retry": 2, "ok": 2},
    "doomed": {"retry": 1, "dead": 1},
    "refuse": {"dead": 1},
}


pytestmark = pytest.mark.anyio


async def test_a_burst_run_is_counted_by_handler_and_outcome_and_served_over_http(
    redis: Redis, redis_url: str
) -> None:
    settings = make_settings(redis_url, worker_metrics="off")  # served below, on a port of the test's choice
    registry = outcome_registry()
    metrics = WorkerMetrics(handler.name for handler in registry)
    for body in (vote_body(), vote_body(), review_body()):
        await store(redis, body)
    await bridge_all(Bridge(redis, registry, settings))

    worker = Worker(
        **build_worker_settings(settings, registry, Hooks(), inprocess_options(), metrics),
        burst=True,
        handle_signals=False,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()

    port = free_port()
    served = await serve_worker_metrics(make_settings(redis_url, worker_metrics=f"127.0.0.1:{port}"), metrics)
    assert served is not None and served.port == port
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        await served.close()
    samples = parse(response.text)

    assert {h: runs_by_outcome(samples, h) for h in EXPECTED_RUNS} == EXPECTED_RUNS
    for handler, outcomes in EXPECTED_RUNS.items():
        for outcome, count in outcomes.items():
            labels = {"handler": handler, "outcome": outcome}
            assert value(samples, "relay_handler_duration_seconds_count", **labels) == count
            assert value(samples, "relay_handler_duration_seconds_bucket", le="+Inf", **labels) == count
            assert value(samples, "relay_handler_duration_seconds_sum", **labels) > 0
    dead = {
        (h, r): value(samples, "relay_dead_letters_total", handler=h, reason=r)
        for h in EXPECTED_RUNS
        for r in DEAD_REASONS
    }
    assert {key: count for key, count in dead.items() if count} == {
        ("doomed", "exhausted"): 1,
        ("refuse", "permanent"): 1,
    }
    assert value(samples, "relay_handler_runs_total", handler="succeed", outcome="dead") == 0  # exists at 0
    assert ("relay_handler_runs_total", frozenset({("handler", "succeed"), ("outcome", "dead")})) in samples


async def test_a_job_for_a_handler_this_worker_lacks_is_counted_as_skipped(
    redis: Redis, settings: Settings
) -> None:
    registry = outcome_registry()
    metrics = WorkerMetrics(handler.name for handler in registry)
    await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    older = Registry()  # a worker of an older version, without "succeed", "flaky" ...

    @older.on(ReviewAdd)
    async def unrelated(ctx: Context, event: ReviewAdd) -> None:
        pass

    options = inprocess_options(unknown_handler_tries=2, unknown_handler_backoff=0.01)
    kwargs = build_worker_settings(settings, older, Hooks(), options, metrics)
    worker = Worker(**kwargs, burst=True, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()

    for handler in ("succeed", "flaky"):  # deferred once, then dead-lettered as UnknownHandler
        assert (metrics.runs.count(handler, "skipped"), metrics.runs.count(handler, "dead")) == (1, 1)
        assert metrics.dead_letters[handler, "unknown_handler"] == 1


async def test_the_bridge_reads_lag_pending_and_dead_letters_in_one_look(
    redis: Redis, settings: Settings
) -> None:
    registry = outcome_registry()
    bridge = Bridge(redis, registry, settings, options=BridgeOptions(read_count=1))
    await bridge.ensure_group()
    for _ in range(3):
        await store(redis, vote_body())

    assert (await bridge.check_backlog()).lag == 3
    await redis.xreadgroup(
        CONSUMER_GROUP, "someone-else", {EVENTS_STREAM: ">"}, count=1
    )  # read, not acknowledged
    await bridge.step()  # reads and acknowledges one more
    backlog = await bridge.check_backlog()
    assert (backlog.lag, backlog.pending, backlog.dead_letters) == (1, 1, 0)
    assert await bridge.queue_is_full() is False

    metrics = WorkerMetrics(handler.name for handler in registry)
    metrics.bridge = bridge
    samples = parse(generate_latest(metrics.registry).decode())
    assert value(samples, "relay_group_lag") == 1
    assert value(samples, "relay_group_pending") == 1
    assert value(samples, "relay_dead_letters_stored") == 0
    assert value(samples, "relay_queue_due_jobs") == 2  # the step queued succeed and flaky for one vote
    assert value(samples, "relay_bridge_entries_total") == 1
    assert value(samples, "relay_bridge_jobs_total") == 2


async def test_the_worker_serves_metrics_from_start_up_to_shutdown(redis: Redis, redis_url: str) -> None:
    port = free_port()
    settings = make_settings(redis_url, worker_metrics=f"127.0.0.1:{port}")
    options = inprocess_options(run_bridge=True, bridge=BridgeOptions(block_ms=20))
    lifecycle = Lifecycle(settings, outcome_registry(), Hooks(), options)

    await lifecycle.on_startup({"redis": redis})
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            async def lag_is_reported() -> float | None:
                samples = parse((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
                return samples.get(("relay_group_lag", frozenset()))

            for _ in range(500):  # the bridge looks at the backlog as it starts
                if await lag_is_reported() is not None:
                    break
                await asyncio.sleep(0.01)
            assert await lag_is_reported() == 0
    finally:
        await lifecycle.on_shutdown({})

    async with httpx.AsyncClient(timeout=10) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/metrics")


async def test_a_worker_without_a_free_port_runs_on_without_metrics(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(redis_url, worker_metrics=f"127.0.0.1:{port}", worker_metrics_ports=1)

        with caplog.at_level(logging.WARNING, logger="worker.metrics"):
            served = await serve_worker_metrics(settings, WorkerMetrics([]))

    assert served is None
    assert "worker metrics not served" in caplog.text


@pytest.mark.slow
def test_two_workers_on_one_host_each_serve_metrics_on_a_port_of_their_own(
    redis_url: str, tmp_path: Path
) -> None:
    first_port = free_port()
    client = redis.Redis.from_url(redis_url)
    settings = {
        "redis_url": redis_url,
        "secret": SECRET,
        "worker_metrics": f"127.0.0.1:{first_port}",
        "worker_metrics_ports": "8",
    }
    with worker_pool(tmp_path, settings) as pool:
        workers = [pool.start("tests.support.tasks_outcomes") for _ in range(2)]
        urls = [_metrics_url(worker) for worker in workers]
        for worker in workers:
            worker.wait_reading(client)
        assert len(set(urls)) == 2
        assert (
            urls[0] == f"http://127.0.0.1:{first_port}/metrics"
            or urls[1] == f"http://127.0.0.1:{first_port}/metrics"
        )

        for body in (vote_body(), vote_body(), review_body()):
            store_sync(client, body)
        until(lambda: len(runs(client)) >= 9, 30, "every run of every handler")

        def totals() -> dict[str, dict[str, float]] | None:
            both = [scrape(url) for url in urls]
            summed = {
                h: {o: sum(runs_by_outcome(s, h).get(o, 0) for s in both) for o in RUN_OUTCOMES}
                for h in EXPECTED_RUNS
            }
            found = {h: {o: n for o, n in c.items() if n} for h, c in summed.items()}
            return found if found == EXPECTED_RUNS else None

        assert until(totals, 30, "the runs counted across both workers") == EXPECTED_RUNS
        for worker in workers:
            worker.terminate()
            assert worker.wait_exit() == 0
    client.close()


def _metrics_url(worker: WorkerProcess) -> str:
    found = until(
        lambda: re.search(r"worker metrics on (http://\S+/metrics)", worker.log()),
        20,
        f"{worker.name} serves metrics",
    )
    return found.group(1)
