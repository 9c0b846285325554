"""`make compose-test`: the real image and docker-compose.yml, with Redis, the edge and two workers.

Builds the image, starts the stack under a project name of its own, posts signed events to the
published port, and checks that every handler ran once for each; then SIGKILLs a worker in the middle
of a burst and checks that nothing is lost; then restarts Redis and checks that the events survive
and the stack still takes new ones. Tears everything down (volumes included) however it ends.

Skipped unless ``COMPOSE_TEST=1`` (the make target sets it): it needs a Docker daemon and takes
minutes. ``COMPOSE="docker-compose"`` or ``COMPOSE="docker compose"`` picks the client; by default
``docker compose`` when it is installed, else docker-compose (1.29 is what Debian packages).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from relay.core.keys import EVENTS_STREAM
from tests.support.redis_server import free_port

TASKS = Path(__file__).with_name("compose_tasks.py")
RUNS = "compose-test:runs"
"""The hash `compose_tasks.py` counts runs in. Not imported from there: importing it would register its
handlers in this test process's registry, beside worker.tasks's of the same names."""

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 120.0  # seconds for any one thing to happen; generous, never a measure of speed
HANDLERS = {"VOTE_ADD": ("reward_voter", "audit"), "REVIEW_ADD": ("log_review", "audit")}

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPOSE_TEST") != "1", reason="needs Docker; run it with `make compose-test`"
)


def compose_client() -> list[str]:
    chosen = os.environ.get("COMPOSE")
    if chosen:
        return shlex.split(chosen)
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if shutil.which("docker") and v2.returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"]


@dataclass
class Stack:
    """One compose project: its command prefix, environment and the edge's published URL."""

    base: list[str]
    env: dict[str, str]
    url: str
    secret: str

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [*self.base, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def redis(self, *command: str) -> str:
        return self.run("exec", "-T", "redis", "redis-cli", "--raw", *command)

    def runs(self) -> dict[tuple[str, str], int]:
        """(handler, event id) -> runs, from the hash the mounted handlers write."""
        lines = self.run("exec", "-T", "redis", "redis-cli", "--raw", "HGETALL", RUNS).split()
        pairs = zip(lines[0::3], lines[1::3], lines[2::3], strict=True)  # "handler id" splits in two
        return {(handler, entry): int(n) for handler, entry, n in pairs}

    def containers(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).split()

    def post(self, body: bytes) -> str:
        signature = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        answer = httpx.post(
            f"{self.url}/webhook",
            content=body,
            headers={"X-Sphere-Signature": signature, "Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = httpx.get(f"{self.url}/readyz", timeout=2).status_code
                if last == 200:
                    return
            except httpx.HTTPError as error:
                last = error
            time.sleep(0.5)
        pytest.fail(f"the edge never became ready (last: {last!r}):\n{self.run('logs', check=False)}")

    def wait_handled(self, expected: dict[str, str], *, exactly_once: bool) -> dict[tuple[str, str], int]:
        """Wait until every handler ran for every event in `expected` (entry id -> event type)."""
        wanted = {(handler, entry) for entry, kind in expected.items() for handler in HANDLERS[kind]}
        deadline = time.monotonic() + DEADLINE
        runs: dict[tuple[str, str], int] = {}
        while time.monotonic() < deadline:
            runs = self.runs()
            if wanted <= set(runs):
                break
            time.sleep(1)
        missing = wanted - set(runs)
        assert not missing, f"{len(missing)} handler runs never happened, e.g. {sorted(missing)[:3]}"
        if exactly_once:
            assert {key: runs[key] for key in wanted} == dict.fromkeys(wanted, 1)
        return runs


def vote(n: int) -> bytes:
    return b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"%d"}' % (10**17 + n)


def review(n: int) -> bytes:
    return (
        b'{"event":"REVIEW_ADD","guild_id":"338202622731485185","user_id":"258317078560243712",'
        b'"review":{"id":"%d","published_timestamp":1604839992654,"stars":5,'
        b'"content":{"title":"t","description":"d"}}}' % (10**17 + n)
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    override = tmp_path_factory.mktemp("compose") / "override.yml"
    override.write_text(
        f"services:\n  worker:\n    volumes:\n      - {TASKS}:/srv/relay/compose_tasks.py:ro\n"
    )
    project = f"relaytest{os.getpid()}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    secret = secrets.token_hex(32)
    env |= {
        "RELAY_SECRET": secret,
        "RELAY_TASKS": "compose_tasks",
        "RELAY_CLAIM_IDLE_SECONDS": "5",
        "EDGE_PUBLISH": f"127.0.0.1:{port}",
    }
    base = [*compose_client(), "-p", project, "-f", str(ROOT / "docker-compose.yml"), "-f", str(override)]
    stack = Stack(base, env, f"http://127.0.0.1:{port}", secret)
    try:
        stack.run("build")
        stack.run("up", "-d")
        stack.wait_ready()
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", "--timeout", "5", check=False)


def test_the_file_keeps_two_workers_and_publishes_the_edge_on_loopback_only(stack: Stack) -> None:
    assert len(stack.containers("worker")) == 2
    ports = stack.run("port", "edge", "3266").split()
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports
    assert httpx.get(f"{stack.url}/metrics", timeout=5).status_code == 404  # not on the public port
    assert httpx.get(f"{stack.url}/openapi.json", timeout=5).status_code == 404


def test_every_handler_runs_once_for_each_event(stack: Stack) -> None:
    posted = {stack.post(vote(n)): "VOTE_ADD" for n in range(20)}
    posted |= {stack.post(review(n)): "REVIEW_ADD" for n in range(5)}

    stack.wait_handled(posted, exactly_once=True)


def test_a_worker_killed_mid_burst_loses_nothing(stack: Stack) -> None:
    done_before = len(stack.runs())
    posted = {stack.post(vote(n)): "VOTE_ADD" for n in range(100, 160)}
    deadline = time.monotonic() + DEADLINE
    while len(stack.runs()) == done_before and time.monotonic() < deadline:
        time.sleep(0.2)  # until the burst is being worked on: 120 runs of 1 s each
    victim = stack.containers("worker")[0]

    subprocess.run(["docker", "kill", "--signal", "KILL", victim], check=True, capture_output=True)

    runs = stack.wait_handled(posted, exactly_once=False)  # at least once: the victim was mid-run
    assert len(runs) - done_before == 2 * len(posted)


def test_events_survive_a_redis_restart(stack: Stack) -> None:
    posted = {stack.post(vote(n)): "VOTE_ADD" for n in range(200, 205)}
    stack.wait_handled(posted, exactly_once=False)
    before = int(stack.redis("XLEN", EVENTS_STREAM).strip())
    runs_before = stack.runs()

    stack.run("restart", "redis")
    stack.wait_ready()

    assert int(stack.redis("XLEN", EVENTS_STREAM).strip()) == before
    assert stack.runs() == runs_before
    after = {stack.post(vote(300)): "VOTE_ADD"}
    stack.wait_handled(after, exactly_once=True)


def test_the_tasks_module_counts_in_the_hash_this_test_reads() -> None:
    assert f'RUNS = "{RUNS}"' in TASKS.read_text()
