"""``arq worker.main.WorkerSettings``: built from the environment when arq asks, tuned for short handlers."""

from __future__ import annotations

import inspect
import logging
import math
import sys
from pathlib import Path

import arq.worker
import pytest
from arq.utils import import_string
from arq.worker import Worker, get_kwargs

from relay.core.events import VoteAdd
from relay.core.settings import Settings
from tests.conftest import SECRET, make_settings
from tests.worker.helpers import inprocess_options
from worker import Context, Registry
from worker.bridge import BridgeOptions
from worker.connection import worker_redis
from worker.enqueue import RUN_HANDLER
from worker.jobs import ARQ_MAX_TRIES, MARGIN_SECONDS
from worker.keys import ARQ_QUEUE
from worker.main import ArqLines, Hooks, Lifecycle, build_worker_settings
from worker.registry import default_registry


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str) -> pytest.MonkeyPatch:
    """The environment of a worker process, and a default registry as empty as in a fresh process."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setattr(default_registry, "_handlers", {})
    monkeypatch.delitem(sys.modules, "tests.support.tasks_record", raising=False)
    for name, value in {
        "RELAY_SECRET": SECRET,
        "RELAY_REDIS_URL": redis_url,
        "RELAY_TASKS": "tests.support.tasks_record",
        "RELAY_RETENTION_SECONDS": "3600",
        "RELAY_CLAIM_IDLE_SECONDS": "30",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.anyio
async def test_arq_gets_one_function_for_every_handler_and_settings_for_short_handlers(
    environment: object,
) -> None:
    kwargs = get_kwargs(import_string("worker.main.WorkerSettings"))

    [function] = kwargs["functions"]  # the handler is a job argument: no job meets "function not found"
    assert function.name == RUN_HANDLER == "relay.run_handler"
    assert (function.timeout_s, function.max_tries) == (30 + MARGIN_SECONDS, ARQ_MAX_TRIES)
    assert kwargs["queue_name"] == ARQ_QUEUE
    assert kwargs["poll_delay"] <= 0.05  # not arq's 0.5 s sleep between polls
    assert kwargs["max_jobs"] >= 50
    assert kwargs["job_completion_wait"] == math.ceil(30 + MARGIN_SECONDS)
    assert (
        kwargs["expires_extra_ms"] == 3600 * 1000
    )  # a queued job lives as long as the stream keeps its entry
    assert kwargs["keep_result"] >= 30
    assert kwargs["ctx"]["settings"].tasks == "tests.support.tasks_record"

    worker = Worker(**kwargs, handle_signals=False)
    assert worker.in_progress_timeout_s == 30 + MARGIN_SECONDS + 10  # how soon a crashed run is retried


def test_settings_are_read_when_arq_asks_not_at_import(environment: pytest.MonkeyPatch) -> None:
    import worker.main

    environment.setenv("RELAY_TASKS", "no_such_tasks_module")
    with pytest.raises(SystemExit, match="RELAY_TASKS=no_such_tasks_module: no such module"):
        worker.main.WorkerSettings  # noqa: B018

    environment.delenv("RELAY_SECRET")
    with pytest.raises(SystemExit, match="RELAY_SECRET"):
        worker.main.WorkerSettings  # noqa: B018


def test_other_missing_attributes_are_still_missing() -> None:
    import worker.main

    with pytest.raises(AttributeError):
        worker.main.NoSuchThing  # noqa: B018


def test_a_worker_without_handlers_refuses_to_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="no handlers registered"):
        build_worker_settings(settings, Registry())


def test_each_call_builds_fresh_settings(settings: Settings) -> None:
    registry = Registry()

    @registry.on("VOTE_ADD", timeout=5)
    async def quick(ctx: object, event: object) -> None:
        pass

    first, second = build_worker_settings(settings, registry), build_worker_settings(settings, registry)
    assert first["ctx"] is not second["ctx"]
    assert first["job_completion_wait"] == math.ceil(5 + MARGIN_SECONDS)


def test_arq_times_out_a_job_only_after_the_longest_handler_timeout_and_the_margin(
    settings: Settings,
) -> None:
    registry = Registry()

    @registry.on("VOTE_ADD", timeout=5)
    async def quick(ctx: object, event: object) -> None:
        pass

    @registry.on("REVIEW_ADD", timeout=12)
    async def slow(ctx: object, event: object) -> None:
        pass

    kwargs = build_worker_settings(settings, registry)
    [function] = kwargs["functions"]
    # Each handler's own timeout is the wrapper's; arq's bound only catches a wrapper that overran.
    assert function.timeout_s == kwargs["job_timeout"] == 12 + MARGIN_SECONDS


async def count_vote(ctx: Context, event: VoteAdd) -> None:
    pass


@pytest.mark.anyio
@pytest.mark.parametrize(("max_jobs", "own_jobs"), [(None, 2 * 7), (3, 2 * 3)])
async def test_the_bridge_keeps_about_two_rounds_of_its_workers_jobs_queued(
    redis_url: str, max_jobs: int | None, own_jobs: int
) -> None:
    settings = make_settings(redis_url, worker_concurrency=7)
    options = inprocess_options(run_bridge=True, max_jobs=max_jobs, bridge=BridgeOptions(block_ms=20))
    registry = Registry()
    registry.on("VOTE_ADD")(count_vote)
    lifecycle = Lifecycle(settings, registry, Hooks(), options)
    client = worker_redis(settings, queue=ARQ_QUEUE, expires_extra_ms=1000)
    await lifecycle.on_startup({"redis": client})
    try:
        assert lifecycle.bridge is not None and lifecycle.bridge.options.own_jobs == own_jobs
        assert lifecycle.bridge.own_room() == own_jobs  # nothing queued yet
    finally:
        await lifecycle.on_shutdown({"redis": client})
        await client.aclose()


def test_arq_still_logs_its_job_lines_in_the_formats_the_filter_drops() -> None:
    source = inspect.getsource(arq.worker)
    for line_format in ArqLines.JOB_FORMATS:
        assert f"'{line_format}'" in source, line_format

    def record(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("arq.worker", level, __file__, 1, msg, None, None)

    root_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        job_line = next(iter(ArqLines.JOB_FORMATS))
        assert ArqLines().filter(record(logging.INFO, job_line)) is False
        assert ArqLines().filter(record(logging.WARNING, job_line)) is True
        assert ArqLines().filter(record(logging.INFO, "Starting worker for %d functions: %s")) is True
        logging.getLogger().setLevel(logging.WARNING)  # RELAY_LOG_LEVEL=WARNING
        assert ArqLines().filter(record(logging.INFO, "Starting worker for %d functions: %s")) is False
    finally:
        logging.getLogger().setLevel(root_level)
