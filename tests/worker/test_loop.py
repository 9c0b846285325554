"""The worker's event loop: arq's Worker runs on uvloop, and SIGTERM still stops the bridge first."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import SECRET
from worker.loop import install_event_loop, new_event_loop

ROOT = Path(__file__).resolve().parents[2]

# What arq's CLI does (import WorkerSettings, then build the Worker), then a SIGTERM to itself.
ARQ_CLI_STEPS = textwrap.dedent("""
    import os, signal
    from arq.utils import import_string
    from arq.worker import create_worker
    from worker.main import chain_stop_signals

    worker = create_worker(import_string("worker.main.WorkerSettings"))
    print("loop", type(worker.loop).__module__)
    stopped = []

    async def main():
        print("chained", chain_stop_signals(lambda: stopped.append("bridge")))
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # bounded: the handler runs on one of the next turns of the loop
            if not worker.allow_pick_jobs:
                break
            await asyncio.sleep(0.01)
        print("bridge stopped", stopped == ["bridge"], "arq stopped", not worker.allow_pick_jobs)

    import asyncio
    worker.loop.run_until_complete(main())
""")


@pytest.mark.slow
def test_arq_builds_its_worker_on_uvloop_and_sigterm_reaches_the_bridge_then_arq() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        RELAY_SECRET=SECRET,
        RELAY_REDIS_URL="redis://127.0.0.1:1/0",  # never contacted: nothing here talks to Redis
        RELAY_TASKS="tests.support.tasks_record",
        RELAY_WORKER_METRICS="off",
    )
    result = subprocess.run(
        [sys.executable, "-c", ARQ_CLI_STEPS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "loop worker.loop" in lines  # the loop class new_event_loop makes around uvloop's
    assert "chained True" in lines
    assert "bridge stopped True arq stopped True" in lines


def test_the_loop_keeps_a_table_of_its_signal_handlers() -> None:
    async def add_then_remove() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, print, "one")
        added = signal.SIGUSR1 in loop._signal_handlers  # type: ignore[attr-defined]
        removed = loop.remove_signal_handler(signal.SIGUSR1)
        return added, removed, signal.SIGUSR1 in loop._signal_handlers  # type: ignore[attr-defined]

    loop = new_event_loop()
    try:
        assert loop.run_until_complete(add_then_remove()) == (True, True, False)
    finally:
        loop.close()


@pytest.mark.anyio
async def test_a_running_loop_is_left_alone() -> None:
    running = asyncio.get_running_loop()

    install_event_loop()

    assert asyncio.get_event_loop() is running
