"""The plain stack of `make compose-test`: docker-compose.yml under a project name of the test's own."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.stack.compose import IMAGE, ROOT, Project, Stack, docker, image_id, override_for, stack_variables
from tests.support.redis_server import free_port


@pytest.fixture(scope="session")
def users_image() -> str | None:
    """The id of the files' own image tag before the tests build anything (None: there was none)."""
    return image_id("sphere-relay:latest")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, users_image: str | None) -> Iterator[Stack]:
    """docker-compose.yml with the counting handlers, started once for every test of the folder.

    No RELAY_WORKERS among its variables: it runs the file's default, whatever `.env` says."""
    folder = tmp_path_factory.mktemp("plain")
    port = free_port()
    secret = secrets.token_hex(32)
    variables = stack_variables(secret, port)
    files = [ROOT / "docker-compose.yml", override_for(folder, ROOT / "docker-compose.yml")]
    project = Project(f"relaytest{os.getpid()}", files, folder / "env", variables)
    stack = Stack(project, f"http://127.0.0.1:{port}", secret)
    try:
        stack.run("build")
        stack.run("up", "-d")
        stack.wait_ready()
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        if image_id(IMAGE):
            docker("rmi", IMAGE)
