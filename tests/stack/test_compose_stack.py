"""`make compose-test`: the real image and docker-compose.yml, with Redis, the edge and two workers.

Builds the image, starts the stack under a project name and an environment of its own (`conftest.py`,
`compose.py`), posts signed events to the published port, and checks that every handler ran once for
each; then SIGKILLs a worker in the middle of a burst and checks that nothing is lost and that Docker
leaves that container down until the next `up`; then restarts Redis and checks that the events
survive and the stack still takes new ones. Tears everything down (volumes included) however it ends.

Skipped unless ``COMPOSE_TEST=1`` (the make target sets it): it needs a Docker daemon and takes
minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from relay.core.keys import EVENTS_STREAM
from tests.stack.compose import (
    DEADLINE,
    IMAGE,
    RUNS,
    TASKS,
    Project,
    Stack,
    container_states,
    docker,
    image_id,
    review,
    vote,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPOSE_TEST") != "1", reason="needs Docker; run it with `make compose-test`"
)


def test_the_file_keeps_two_workers_and_publishes_the_edge_on_loopback_only(stack: Stack) -> None:
    assert len(stack.containers("worker")) == 2
    ports = stack.run("port", "edge", "3266").split()
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports
    assert httpx.get(f"{stack.url}/metrics", timeout=5).status_code == 404  # not on the public port
    assert httpx.get(f"{stack.url}/openapi.json", timeout=5).status_code == 404


def test_the_tests_build_an_image_of_their_own_and_leave_the_users_tag_alone(
    stack: Stack, users_image: str | None
) -> None:
    containers = [c for service in ("edge", "worker") for c in stack.containers(service)]
    images = {found["Config"]["Image"] for found in json.loads(docker("inspect", *containers))}

    assert images == {IMAGE}
    assert image_id("sphere-relay:latest") == users_image  # not rebuilt: a user's next `up` keeps its image


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
    # Docker restarts a container whose process dies, but not one it was told to kill, whatever
    # `restart: unless-stopped` says (docs/operations.md, "When a worker dies"); the next `up` does.
    assert running(victim) == (False, 0)
    stack.run("up", "-d")
    assert [running(worker)[0] for worker in stack.containers("worker")] == [True, True]


def running(container: str) -> tuple[bool, int]:
    """Whether `container` runs, and how often Docker restarted it."""
    found = json.loads(docker("inspect", container))[0]
    return found["State"]["Running"], found["RestartCount"]


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


def test_a_profile_whose_image_cannot_be_pulled_leaves_the_running_stack_alone(
    stack: Stack, tmp_path: Path
) -> None:
    """docs/deploy.md, "Optional profiles": the core first, then a profile in a command of its own."""
    unpullable = tmp_path / "unpullable.yml"
    unpullable.write_text(
        'services:\n  extra:\n    image: localhost:1/unpullable:never\n    profiles: ["extra"]\n'
    )
    with_profile = Project(
        stack.project.name, [*stack.project.files, unpullable], tmp_path / "env", stack.project.variables
    )
    before = container_states(stack.project.name)

    failed = with_profile.attempt("--profile", "extra", "up", "-d")

    assert failed.returncode != 0 and "localhost:1" in failed.stdout + failed.stderr
    assert container_states(stack.project.name) == before
    stack.wait_handled({stack.post(vote(400)): "VOTE_ADD"}, exactly_once=True)


def test_the_tasks_module_counts_in_the_hash_this_test_reads() -> None:
    assert f'RUNS = "{RUNS}"' in TASKS.read_text()
