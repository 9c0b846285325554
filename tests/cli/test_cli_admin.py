"""``relay admin`` as an operator starts it: a real process, settings from the environment only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.admin.support import SECRET, TOKEN
from tests.support.redis_server import free_port
from tests.support.worker_process import ROOT

RELAY = Path(sys.executable).with_name("relay")


def environment(redis_url: str, **relay: str) -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
    settings = {"REDIS_URL": redis_url, "SECRET": SECRET, "TASKS": "tests.admin.tasks_admin", **relay}
    return {**clean, **{f"RELAY_{key.upper()}": value for key, value in settings.items()}}


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, "RELAY_ADMIN_TOKEN is required"),
        ("short-token", "RELAY_ADMIN_TOKEN: must be at least 16 characters"),
        (SECRET, "RELAY_ADMIN_TOKEN: must differ from RELAY_SECRET"),
    ],
)
def test_admin_refuses_to_start_without_a_good_token(
    redis_url: str, token: str | None, expected: str
) -> None:
    env = environment(redis_url, **({"ADMIN_TOKEN": token} if token else {}))
    done = subprocess.run(
        [str(RELAY), "admin"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert SECRET not in done.stderr


@pytest.mark.parametrize("by_flag", [False, True], ids=["RELAY_REDIS_URL", "--redis-url"])
def test_admin_serves_the_page_on_its_address(redis_url: str, tmp_path: Path, by_flag: bool) -> None:
    port = free_port()
    env = environment(redis_url, ADMIN_TOKEN=TOKEN, ADMIN_ADDRESS=f"127.0.0.1:{port}")
    command = [str(RELAY), "admin"]
    if by_flag:
        env["RELAY_REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there: the flag must win
        command = [str(RELAY), "--redis-url", redis_url, "admin"]
    with (tmp_path / "admin.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {TOKEN}"})
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "admin.log").read_text()
                assert time.monotonic() < deadline, "relay admin did not start"
                time.sleep(0.05)
        assert answer.status_code == 200 and "Overview" in answer.text
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=15)
