"""The edge as production runs it: ``uvicorn relay.app:app`` in a process of its own.

For tests where the edge must not share this interpreter (a flood measured from the test process
would otherwise compete with the server for one GIL) or where its whole output is the subject.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from relay.cli.devrun import EDGE_LIMITS
from tests.support.processes import stop as stop_process
from tests.support.redis_server import free_port

BIN = Path(sys.executable).parent
PRODUCTION_FLAGS = (*EDGE_LIMITS, "--no-access-log")
"""The edge's uvicorn flags in docker-compose.yml (tests/test_compose.py checks that they agree)."""


class EdgeProcess:
    """``uvicorn relay.app:app`` on a free loopback port; stdout and stderr go to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        args = [
            str(BIN / "uvicorn"),
            "relay.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *flags,
        ]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=log_path.parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,  # no .env there
            )

    def wait_ready(self, within: float = 20.0) -> EdgeProcess:
        deadline = time.monotonic() + within
        while True:
            assert self.process.poll() is None, f"the edge exited:\n{self.log()}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the edge did not start:\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def run_to_exit(cwd: Path, relay_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``uvicorn relay.app:app`` run in `cwd` (no .env there) until it exits, its output captured: for a
    start-up refusal. Of the RELAY_* variables it sees only `relay_env`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")} | relay_env
    return subprocess.run(
        [str(BIN / "uvicorn"), "relay.app:app", "--port", str(free_port())],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
