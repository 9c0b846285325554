"""Compose projects for `make compose-test`, each under a project name and an environment of its own.

A project's variables go to compose in a file of the test's (``--env-file``), so the ``.env`` of the
folder is never read, and its process gets only what reaches Docker: no ``RELAY_*``, ``COMPOSE_*`` or
``EDGE_PUBLISH`` of the user's shell. What a test project makes carries its project label, which is
how the tests find what it left behind. ``COMPOSE="docker-compose"`` or ``COMPOSE="docker compose"``
picks the client; by default ``docker compose`` when it is installed, else docker-compose (1.29 is
what Debian packages).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TASKS = Path(__file__).with_name("compose_tasks.py")
RUNS = "compose-test:runs"
"""The hash `compose_tasks.py` counts runs in. Not imported from there: importing it would register its
handlers in this test process's registry, beside worker.tasks's of the same names."""

DEADLINE = 120.0  # seconds for any one thing to happen; generous, never a measure of speed
HANDLERS = {"VOTE_ADD": ("reward_voter", "audit"), "REVIEW_ADD": ("log_review", "audit")}
LABEL = "com.docker.compose.project"

PASSED_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)
"""The only variables of the test's own environment a compose command sees: what finds the client and
the Docker daemon."""


def compose_client() -> list[str]:
    chosen = os.environ.get("COMPOSE")
    if chosen:
        return shlex.split(chosen)
    if shutil.which("docker"):
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if v2.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"]


def process_env() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}


@dataclass
class Project:
    """One compose project: its name, files and variables (written to `env_file`), run from `root`."""

    name: str
    files: list[Path]
    env_file: Path
    variables: dict[str, str]
    root: Path = ROOT

    def __post_init__(self) -> None:
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in self.variables.items()))

    @property
    def base(self) -> list[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        return [*compose_client(), "-p", self.name, "--env-file", str(self.env_file), *files]

    def attempt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args], cwd=self.root, env=process_env(), capture_output=True, text=True, timeout=600
        )

    def run(self, *args: str, check: bool = True) -> str:
        done = self.attempt(*args)
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout


@dataclass
class Stack:
    """A running project with an edge on `url` signed with `secret`, its Redis service `redis_service`."""

    project: Project
    url: str
    secret: str
    redis_service: str = "redis"

    def run(self, *args: str, check: bool = True) -> str:
        return self.project.run(*args, check=check)

    def redis(self, *command: str) -> str:
        return self.run("exec", "-T", self.redis_service, "redis-cli", "--raw", *command)

    def runs(self) -> dict[tuple[str, str], int]:
        """(handler, event id) -> runs, from the hash the mounted handlers write."""
        lines = self.redis("HGETALL", RUNS).split()
        pairs = zip(lines[0::3], lines[1::3], lines[2::3], strict=True)  # "handler id" splits in two
        return {(handler, entry): int(n) for handler, entry, n in pairs}

    def containers(self, service: str) -> list[str]:
        """Every container of `service`, running or not (`ps -a`: v2's `ps` lists running ones only)."""
        return self.run("ps", "-a", "-q", service).split()

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


def stack_variables(secret: str, port: int) -> dict[str, str]:
    """A test stack's settings: the counting handlers, a short claim time, the edge on `port`."""
    return {
        "RELAY_SECRET": secret,
        "RELAY_TASKS": "compose_tasks",
        "RELAY_CLAIM_IDLE_SECONDS": "5",
        "EDGE_PUBLISH": f"127.0.0.1:{port}",
    }


IMAGE = f"sphere-relay-test:{os.getpid()}"
"""The tag the tests build the relay's image under: not the files' `sphere-relay:latest`, which a stack
of the user's runs, and which a rebuild from this checkout would make its next `up` recreate with."""


def override_for(folder: Path, file: Path) -> Path:
    """A compose file over `file`: the image the tests build for every service that builds one, and the
    counting handlers mounted into the workers."""
    built = [
        name for name, service in yaml.safe_load(file.read_text())["services"].items() if "build" in service
    ]
    services: dict[str, Any] = {name: {"image": IMAGE} for name in built}
    services["worker"]["volumes"] = [f"{TASKS}:/srv/relay/compose_tasks.py:ro"]
    override = folder / "override.yml"
    override.write_text(yaml.safe_dump({"services": services}))
    return override


def image_id(tag: str) -> str | None:
    found = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", tag], capture_output=True, text=True
    )
    return found.stdout.strip() if found.returncode == 0 else None


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def made_by(project: str) -> dict[str, list[str]]:
    """Every container, volume and network that carries `project`'s label."""
    label = f"label={LABEL}={project}"
    return {
        "containers": docker("ps", "-a", "-q", "--filter", label).split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
        "networks": docker("network", "ls", "-q", "--filter", label).split(),
    }


def mounted_volumes(project: str) -> set[str]:
    """The volumes `project`'s containers mount: named and anonymous ones (which carry no label)."""
    ids = made_by(project)["containers"]
    found = json.loads(docker("inspect", *ids)) if ids else []
    return {mount["Name"] for c in found for mount in c["Mounts"] if mount["Type"] == "volume"}


def volumes() -> set[str]:
    return set(docker("volume", "ls", "-q").split())


def container_states(project: str) -> dict[str, tuple[str, str, bool, int]]:
    """Container id -> (name, start time, running, restarts) for every container of `project`."""
    ids = made_by(project)["containers"]
    if not ids:
        return {}
    found = json.loads(docker("inspect", *ids))
    return {
        c["Id"]: (c["Name"], c["State"]["StartedAt"], c["State"]["Running"], c["RestartCount"]) for c in found
    }


def vote(n: int) -> bytes:
    return b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"%d"}' % (10**17 + n)


def review(n: int) -> bytes:
    return (
        b'{"event":"REVIEW_ADD","guild_id":"338202622731485185","user_id":"258317078560243712",'
        b'"review":{"id":"%d","published_timestamp":1604839992654,"stars":5,'
        b'"content":{"title":"t","description":"d"}}}' % (10**17 + n)
    )
