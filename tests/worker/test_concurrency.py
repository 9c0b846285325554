"""Concurrency: ``RELAY_WORKER_CONCURRENCY`` is arq's max_jobs; ``@on(..., concurrency=N)`` caps one handler."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from relay.core.events import VoteAdd
from relay.core.settings import Settings
from tests.conftest import SECRET, make_settings
from tests.worker.helpers import bridge_all, dead_letters, run_burst, store, vote_body
from worker import Context, Registry
from worker.bridge import Bridge
from worker.jobs import MARGIN_SECONDS, job_timeout
from worker.main import build_worker_settings, load_worker_settings
from worker.slots import SLOT_WAIT_SECONDS


def one_handler(**options: object) -> Registry:
    registry = Registry()

    @registry.on(VoteAdd, **options)  # type: ignore[arg-type]
    async def handler(ctx: Context, event: VoteAdd) -> None: ...

    return registry


def test_the_setting_is_arqs_max_jobs(redis_url: str) -> None:
    settings = make_settings(redis_url, worker_concurrency=7)
    assert build_worker_settings(settings, one_handler())["max_jobs"] == 7
    assert build_worker_settings(make_settings(redis_url), one_handler())["max_jobs"] == 100


def test_a_bad_setting_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAY_SECRET", SECRET)
    monkeypatch.setenv("RELAY_WORKER_CONCURRENCY", "0")
    with pytest.raises(SystemExit) as raised:
        load_worker_settings()
    [line] = str(raised.value.code).splitlines()  # one line, naming the variable
    assert "RELAY_WORKER_CONCURRENCY: " in line and "greater than or equal to 1" in line


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_handler_limit_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="concurrency must be"):
        one_handler(concurrency=bad)


def test_a_limit_adds_the_wait_for_a_slot_to_arqs_timeout() -> None:
    assert job_timeout(one_handler(timeout=5)) == 5 + MARGIN_SECONDS
    assert job_timeout(one_handler(timeout=5, concurrency=1)) == 5 + MARGIN_SECONDS + SLOT_WAIT_SECONDS


@pytest.mark.anyio
async def test_a_handler_limit_holds_and_waiting_runs_are_not_attempts(
    redis: Redis, settings: Settings
) -> None:
    registry = Registry()
    running, most, attempts = 0, 0, []

    @registry.on(VoteAdd, concurrency=2, max_attempts=1)
    async def rate_limited(ctx: Context, event: VoteAdd) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        attempts.append(ctx["attempt"])
        await asyncio.sleep(SLOT_WAIT_SECONDS * 1.2)  # longer than a waiting run waits: some are deferred
        running -= 1

    for _ in range(5):
        await store(redis, vote_body())
    await bridge_all(Bridge(redis, registry, settings))
    worker = await run_burst(settings, registry)

    assert most == 2
    assert worker.jobs_retried >= 1  # some runs found no slot and came back later
    assert attempts == [1] * 5  # a deferred run did not use up the single attempt
    assert await dead_letters(redis) == []
