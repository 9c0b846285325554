"""The plain stack of `make compose-test`: docker-compose.yml under a project name of the test's own."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.stack.compose import ROOT, Project, Stack, stack_variables, tasks_override
from tests.support.redis_server import free_port


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """docker-compose.yml with the counting handlers, started once for every test of the folder.

    No RELAY_WORKERS among its variables: it runs the file's default, whatever `.env` says."""
    folder = tmp_path_factory.mktemp("plain")
    port = free_port()
    secret = secrets.token_hex(32)
    variables = stack_variables(secret, port)
    files = [ROOT / "docker-compose.yml", tasks_override(folder)]
    project = Project(f"relaytest{os.getpid()}", files, folder / "env", variables)
    stack = Stack(project, f"http://127.0.0.1:{port}", secret)
    try:
        stack.run("build")
        stack.run("up", "-d")
        stack.wait_ready()
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
