"""`make compose-test`: docker-compose.ha.yml beside the plain stack, and moving an installation to it.

The HA stack runs as a compose project of its own, as docs/deploy.md says (`-p`), next to the plain
stack of `conftest.py`: it takes RELAY_WORKERS from its own environment, handles signed events, and
its `down -v` leaves no container, volume or network behind, while the plain stack's containers are
not recreated, restarted or stopped. Then the steps of docs/deploy.md, "Moving between the stacks":
the plain stack's Redis data folder copied into a new HA stack, which has every event and run.

Skipped unless ``COMPOSE_TEST=1``. The last test stops the plain stack: keep it last.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from relay.core.keys import EVENTS_STREAM
from tests.stack.compose import (
    ROOT,
    Project,
    Stack,
    container_states,
    docker,
    made_by,
    mounted_volumes,
    override_for,
    stack_variables,
    volumes,
    vote,
)
from tests.support.redis_server import free_port

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPOSE_TEST") != "1", reason="needs Docker; run it with `make compose-test`"
)

NOTHING: dict[str, list[str]] = {"containers": [], "volumes": [], "networks": []}


def ha_stack(folder: Path, name: str, workers: int) -> Stack:
    folder.mkdir(exist_ok=True)
    port = free_port()
    secret = secrets.token_hex(32)
    variables = stack_variables(secret, port) | {"RELAY_WORKERS": str(workers)}
    files = [ROOT / "docker-compose.ha.yml", override_for(folder, ROOT / "docker-compose.ha.yml")]
    project = Project(f"relaytest{name}{os.getpid()}", files, folder / "env", variables)
    return Stack(project, f"http://127.0.0.1:{port}", secret, redis_service="redis-primary")


def test_the_ha_stack_runs_beside_the_plain_one_and_down_v_removes_all_it_made(
    stack: Stack, tmp_path: Path
) -> None:
    plain = container_states(stack.project.name)
    ha = ha_stack(tmp_path, "ha", workers=3)  # neither the file's default (2) nor what it ran before (1)
    try:
        ha.run("up", "-d")
        ha.wait_ready()
        assert len(ha.containers("worker")) == 3
        posted = {ha.post(vote(n)): "VOTE_ADD" for n in range(500, 505)}
        ha.wait_handled(posted, exactly_once=True)
        assert container_states(stack.project.name) == plain
        mounted = mounted_volumes(ha.project.name)  # the Sentinels' /data too, an anonymous volume each

        ha.run("down", "-v", "--timeout", "5")

        assert made_by(ha.project.name) == NOTHING
        assert len(mounted) >= 6 and not mounted & volumes()
    finally:
        ha.run("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
    assert container_states(stack.project.name) == plain
    stack.wait_handled({stack.post(vote(510)): "VOTE_ADD"}, exactly_once=True)


def test_an_installation_moves_to_the_ha_stack_with_its_data(stack: Stack, tmp_path: Path) -> None:
    events = stack.redis("XLEN", EVENTS_STREAM).strip()
    runs = stack.runs()
    assert int(events) > 0 and runs
    ha = ha_stack(tmp_path / "ha", "move", workers=1)
    backup = tmp_path / "redis-backup"
    try:
        ha.run("up", "--no-start")
        stack.run("stop")
        docker("cp", f"{stack.containers('redis')[0]}:/data/.", str(backup))
        docker("cp", f"{backup}/.", f"{ha.containers('redis-primary')[0]}:/data")
        ha.run("up", "-d")
        ha.wait_ready()

        assert ha.redis("XLEN", EVENTS_STREAM).strip() == events
        assert ha.runs() == runs
        after = {ha.post(vote(600)): "VOTE_ADD"}
        handled = ha.wait_handled(after, exactly_once=True)
        assert {key: n for key, n in handled.items() if key in runs} == runs  # nothing ran again
    finally:
        ha.run("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
    assert made_by(ha.project.name) == NOTHING
