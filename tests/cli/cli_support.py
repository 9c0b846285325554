"""Helpers for the `relay` command's tests: run it in process with click's runner, and set up state
in Redis with the real edge and worker code (never by hand where a real path exists)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result
from redis.asyncio import Redis

from relay.cli import cli
from relay.cli.common import App
from relay.core.settings import Settings
from tests.worker.helpers import bridge_all, run_burst
from worker.bridge import Bridge
from worker.registry import Registry

T = TypeVar("T")


def hmac_hex(body: bytes, secret: str) -> str:
    """The signature Sphere sends, computed here independently of relay.edge.signature."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def invoke(args: Sequence[str], *, registry: Registry | None = None, input: str | None = None) -> Result:
    """Run ``relay <args>`` in process; a bug surfaces as the test's own exception."""
    return CliRunner().invoke(
        cli, list(args), obj=App(registry=registry), input=input, catch_exceptions=False
    )


def with_redis(redis_url: str, work: Callable[[Redis], Awaitable[T]]) -> T:
    """Run `work` with a client of its own, for synchronous tests (the command runs its own loop)."""

    async def main() -> T:
        client = Redis.from_url(redis_url)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def handle_all(settings: Settings, registry: Registry) -> None:
    """What the workers do: move every new entry to arq jobs, then run them all (burst mode)."""

    async def work(redis: Redis) -> None:
        await bridge_all(Bridge(redis, registry, settings))
        await run_burst(settings, registry)

    with_redis(settings.redis_url, work)


def run_jobs(settings: Settings, registry: Registry) -> None:
    """Run the jobs already queued (a replay's), as a burst worker."""
    asyncio.run(run_burst(settings, registry))


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str) -> Iterator[Path]:
    """A working directory without ``.env`` and an environment holding only ``RELAY_REDIS_URL``."""
    for name in [name for name in os.environ if name.startswith("RELAY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RELAY_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
