"""The processes a bench run starts and always stops: a private redis-server, uvicorn servers, arq workers.

Everything listens on 127.0.0.1 on a free port, runs from PATH or this virtualenv, logs into the run's
own directory, and is stopped (SIGTERM, then SIGKILL after a bounded wait) by `ProcessGroup.close`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from relay.cli.devrun import EDGE_LIMITS

RELAY_APP = "relay.app:app"
"""The edge's ASGI app; started with the production protocol and limits."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" closing the command name, utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    """Return once something accepts connections on `port`; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, lines: int = 20) -> str:
    """The last lines of a process log, for error messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Process:
    """A child process with its log file; `stop` is idempotent."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_timeout: float = 10.0
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.popen.pid)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class ProcessGroup:
    """Starts processes into one run directory and stops every one of them on `close` (or `with`)."""

    def __init__(self, directory: Path, env: Mapping[str, str]) -> None:
        self.directory = directory
        self.env = dict(env)
        self._running: list[Process] = []

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(
        self,
        name: str,
        args: list[str],
        *,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 10.0,
        pass_fds: Sequence[int] = (),
    ) -> Process:
        log = self.directory / f"{name}.log"
        log_file = log.open("ab")
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**self.env, **(env or {})},
            cwd=Path(__file__).resolve().parent.parent,
            pass_fds=pass_fds,  # a listening socket held across restarts (bench/deploys.py)
        )
        process = Process(name, popen, log, stop_timeout, log_file)
        self._running.append(process)
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self._running:
            self._running.remove(process)

    def close(self) -> None:
        # Newest first: servers and workers go before the Redis they use.
        while self._running:
            self._running.pop().stop()


@dataclass(frozen=True)
class Redis:
    """A private redis-server configured like the compose file's (append-only, fsync every second)."""

    process: Process
    port: int
    version: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(group: ProcessGroup) -> Redis:
    if shutil.which("redis-server") is None:
        raise SystemExit("bench: redis-server is not on PATH; install it with: apt-get install redis-server")
    port = free_port()
    data = group.directory / "redis"
    data.mkdir(exist_ok=True)
    args = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data),
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
    ]  # fmt: skip
    process = group.start("redis", args)
    wait_for_port(port, process.popen, process.log)
    version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    words = dict(part.split("=", 1) for part in version.split() if "=" in part)
    return Redis(process, port, words.get("v", version.strip()))


def start_uvicorn(
    group: ProcessGroup,
    name: str,
    app: str,
    env: Mapping[str, str] | None = None,
    *,
    http: Sequence[str] | None = None,
) -> tuple[Process, int]:
    """One uvicorn process with production settings: uvloop, httptools, no access log.

    The relay's edge runs exactly as compose and `make run` start it, unless `http` says otherwise:
    its own httptools protocol (bounded request heads) and uvicorn limits, `relay.cli.devrun.EDGE_LIMITS`.
    """
    port = free_port()
    if http is None:
        http = EDGE_LIMITS if app == RELAY_APP else ("--http", "httptools")
    args = [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--loop", "uvloop",
        *http,
        "--no-access-log",
    ]  # fmt: skip
    process = group.start(name, args, env=env)
    wait_for_port(port, process.popen, process.log)
    return process, port


def start_worker(group: ProcessGroup, name: str, env: Mapping[str, str] | None = None) -> Process:
    """One `arq worker.main.WorkerSettings` process, the command of the compose file's worker service."""
    arq = Path(sys.executable).with_name("arq")
    # A worker lets running handlers finish on SIGTERM; the bench's handlers are no-ops.
    return group.start(name, [str(arq), "worker.main.WorkerSettings"], env=env, stop_timeout=15.0)
