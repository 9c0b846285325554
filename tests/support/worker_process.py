"""Real worker processes for tests: ``arq worker.main.WorkerSettings``, as in production.

A test starts them with the tasks module and settings it needs, kills them (SIGKILL) or stops them
(SIGTERM), and reads their output. Each writes stdout and stderr to a log file of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM

ROOT = Path(__file__).resolve().parents[2]
ARQ = Path(sys.executable).with_name("arq")


class WorkerProcess:
    """One ``arq worker.main.WorkerSettings`` process with ``RELAY_*`` settings of the test's choosing."""

    def __init__(self, directory: Path, name: str, settings: dict[str, str]) -> None:
        self.name = name
        self.log_path = directory / f"{name}.log"
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
        self.env.update({f"RELAY_{key.upper()}": value for key, value in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(ARQ), "worker.main.WorkerSettings"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def is_reading(self, client: redis.Redis) -> bool:
        """Whether this process's bridge has joined the consumer group (it names itself host-pid-random)."""
        try:
            consumers = client.xinfo_consumers(EVENTS_STREAM, CONSUMER_GROUP)
        except redis.ResponseError:  # no stream or group yet
            return False
        return any(f"-{self.pid}-" in consumer["name"].decode() for consumer in consumers)

    def wait_reading(self, client: redis.Redis, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not self.is_reading(client):
            if not self.running():
                raise AssertionError(f"worker {self.name} exited during start-up:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker {self.name} did not start reading within {within}s:\n{self.log()}"
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9: no shutdown hook, no acknowledgement, no cleanup."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def terminate(self) -> None:
        """SIGTERM, as ``docker stop`` sends."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, within: float = 30.0) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {self.name} still running after {within}s:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} never logged {text!r}:\n{self.log()}")
            time.sleep(0.02)


class WorkerPool:
    """Starts worker processes for one test and kills whatever is left at its end."""

    def __init__(self, directory: Path, settings: dict[str, str]) -> None:
        self.directory = directory
        self.settings = settings
        self.started: list[WorkerProcess] = []

    def start(self, tasks: str, **settings: str) -> WorkerProcess:
        worker = WorkerProcess(
            self.directory, f"worker-{len(self.started) + 1}", {**self.settings, "tasks": tasks, **settings}
        )
        self.started.append(worker)
        return worker.start()

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


@contextmanager
def worker_pool(directory: Path, settings: dict[str, str]) -> Iterator[WorkerPool]:
    pool = WorkerPool(directory, settings)
    try:
        yield pool
    finally:
        pool.kill_all()
