"""The projects of `make compose-test` take their variables from files of their own, never from the `.env`
of the folder or the shell of whoever runs the tests.

Needs a compose client only, no daemon (`config` just reads the files), so it runs with every test
where one is installed (CI installs docker-compose).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack.compose import ROOT, Project, compose_client, process_env

pytestmark = pytest.mark.skipif(shutil.which(compose_client()[0]) is None, reason="no compose client")

USERS_DOT_ENV = "RELAY_SECRET=the-users-own-secret-0123\nRELAY_WORKERS=3\nCOMPOSE_PROJECT_NAME=users-own\n"
SECRET = "the-tests-own-secret-0123"


def worker(config: str) -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(config)["services"]["worker"]
    return service


def replicas(service: dict[str, Any]) -> int:
    """`scale` as docker-compose 1.29 prints it; `deploy.replicas` where Compose v2 turns it into that."""
    return int(service.get("scale") or service["deploy"]["replicas"])


@pytest.mark.parametrize("file", ["docker-compose.yml", "docker-compose.ha.yml"])
def test_a_test_project_ignores_the_dot_env_and_the_shell(
    file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(ROOT / file, checkout / file)
    (checkout / ".env").write_text(USERS_DOT_ENV)
    monkeypatch.setenv("RELAY_WORKERS", "4")
    monkeypatch.setenv("COMPOSE_FILE", "elsewhere.yml")
    project = Project("relaytestenv", [checkout / file], tmp_path / "env", {"RELAY_SECRET": SECRET}, checkout)

    ours = worker(project.run("config"))

    assert (replicas(ours), ours["environment"]["RELAY_SECRET"]) == (2, SECRET)
    # The same file as a user runs it, from the folder: the .env is read there, and RELAY_WORKERS is
    # honoured by both files; so the check above could fail.
    users = subprocess.run(
        [*compose_client(), "-f", file, "config"],
        cwd=checkout,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    theirs = worker(users.stdout)
    assert (replicas(theirs), theirs["environment"]["RELAY_SECRET"]) == (3, "the-users-own-secret-0123")
