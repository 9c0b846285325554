"""`make compose-test`: ``docker-compose up -d`` replacing the edge container loses no vote.

The sender of `bench.deploys` signs and retries as top.gg v1 does, to ``POST /webhook/topgg``, (1, 2 and 4 s after a failure) while the
edge's settings change and ``up -d`` replaces its container, with a request stalled mid-body on the
old one; every acknowledged vote must be in the stream. A compose project and an image of its own,
removed afterwards (`bench.compose_deploys`). Skipped unless ``COMPOSE_TEST=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.compose_deploys import measure_compose
from bench.deploys import Plan

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPOSE_TEST") != "1", reason="needs Docker; run it with `make compose-test`"
)


def test_replacing_the_edge_container_loses_no_vote(tmp_path: Path) -> None:
    run = measure_compose(tmp_path, Plan(scheme="topgg", rate=20.0, duration=12.0, deploys=1))

    assert run.tally.sent == 240 and len(run.deploy_seconds) == 1
    assert (run.tally.count("lost"), run.tally.count("refused"), run.missing) == (0, 0, 0), run.line()
