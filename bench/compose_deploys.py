"""The ``compose`` way of `bench.deploys`: ``docker-compose up -d`` replacing the edge container.

Each deploy changes a setting of the edge (``RELAY_DEDUPE_SECONDS``) and runs ``up -d``, which
stops the old container (SIGTERM), then creates and starts the new one on the same published port:
a gap the sender's retries must cover. The stack is a compose project of its own with an image of
its own (so that another stack's image is never replaced), removed with its volumes and that image
afterwards.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from bench.deploys import DeployRun, Plan, missing_from, send_while_deploying, sender_secret, wait_answering
from bench.processes import free_port
from bench.sender import Target
from relay.core.keys import EVENTS_STREAM

ROOT = Path(__file__).resolve().parent.parent
PROJECT = f"relay-deploytest-{os.getpid()}"
IMAGE = f"{PROJECT}:latest"
COMPOSE = tuple(shlex.split(os.environ.get("COMPOSE", "docker-compose")))
"""The client, as `make compose-test` picks it: Debian's docker-compose 1.29 by default;
``COMPOSE="docker compose"`` (v2) replaces a container the same way."""


def measure_compose(directory: Path, plan: Plan) -> DeployRun:
    secret, settings = sender_secret(plan.scheme)
    port = free_port()
    env = {**os.environ, **settings, "EDGE_PUBLISH": f"127.0.0.1:{port}", "RELAY_WORKERS": "1"}
    override = directory / "docker-compose.override.yml"
    override.write_text(
        "services:\n" + "".join(f"  {name}:\n    image: {IMAGE}\n" for name in ("edge", "worker"))
    )
    compose = [*COMPOSE, "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"), "-f", str(override)]

    def run(*args: str, dedupe: int = 86400) -> bytes:
        done = subprocess.run(
            [*compose, *args],
            env={**env, "RELAY_DEDUPE_SECONDS": str(dedupe)},
            cwd=directory,
            capture_output=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose {args[0]} failed:\n{done.stderr.decode(errors='replace')}")
        return done.stdout

    changes = iter(range(86401, 90000))

    def deploy() -> None:
        run("up", "-d", dedupe=next(changes))
        wait_answering(port, within=120)

    try:
        run("up", "-d", "--build")
        wait_answering(port, within=120)
        tally, seconds = send_while_deploying(Target("127.0.0.1", port, plan.scheme, secret), plan, deploy)
        stream = run("exec", "-T", "redis", "redis-cli", "--raw", "XRANGE", EVENTS_STREAM, "-", "+")
        bodies = (line for line in stream.splitlines() if line.startswith(b"{"))
        return DeployRun("compose", tally, seconds, missing_from(tally, plan.scheme, bodies))
    finally:
        subprocess.run(
            [*compose, "down", "-v", "--remove-orphans"],
            env=env,
            cwd=directory,
            capture_output=True,
            timeout=300,
        )
        subprocess.run(["docker", "image", "rm", IMAGE], capture_output=True, timeout=120)
