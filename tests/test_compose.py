"""docker-compose.yml and the Dockerfile point at code that really exists, with the settings it needs.

Docker cannot run here, so these tests read the files: each service's command is parsed by the very
CLI that runs it in the container (uvicorn's, arq's) and its target is imported. `.ci/run` also
validates the whole file with `docker-compose config -q`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from arq.cli import cli as arq_cli
from uvicorn.config import HTTP_PROTOCOLS, LOOP_FACTORIES
from uvicorn.importer import import_from_string
from uvicorn.main import main as uvicorn_cli

from relay.cli.devrun import EDGE_LIMITS
from relay.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
EDGE_PORT = 3266


def command(service: str) -> list[str]:
    value = SERVICES[service]["command"]
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def environment(service: str) -> dict[str, Any]:
    value = SERVICES[service].get("environment", {})
    if isinstance(value, list):  # the list form: ["NAME=value", "NAME"]
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in value)
    return dict(value)


def uvicorn_params() -> dict[str, Any]:
    args = command("edge")
    assert args[0] == "uvicorn"
    return uvicorn_cli.make_context("uvicorn", args[1:]).params


def inspect_in_container_like_process(code: str, target: str, tmp_path: Path) -> Any:
    """Run `code` in a fresh interpreter, as the container does: settings from the environment only.

    A subprocess rather than this one because building the app configures logging process-wide and
    caches the app, which would leak into other tests. `code` prints one JSON document.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {"RELAY_SECRET": "compose-test-secret", "RELAY_REDIS_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run(
        [sys.executable, "-c", code, target],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


APP_PROBE = """
import inspect, json, sys
from uvicorn.importer import import_from_string
app = import_from_string(sys.argv[1])
call = app if inspect.isfunction(app) else app.__call__
print(json.dumps({"async": inspect.iscoroutinefunction(call), "params": list(inspect.signature(call).parameters)}))
"""

WORKER_PROBE = """
import importlib, inspect, json, sys
from arq.worker import Worker, get_kwargs
module_name, _, name = sys.argv[1].rpartition(".")
settings = getattr(importlib.import_module(module_name), name)
kwargs = get_kwargs(settings)
attributes = settings if isinstance(settings, dict) else vars(settings)  # arq takes either
public = [
    key for key, value in attributes.items()
    if not key.startswith("_") and not isinstance(value, (classmethod, staticmethod))
]
print(json.dumps({
    "kwargs": sorted(kwargs),
    "functions": len(kwargs.get("functions") or ()),
    "ignored": sorted(set(public) - set(inspect.signature(Worker).parameters)),
}))
"""


def test_the_three_services_exist() -> None:
    assert {"redis", "edge", "worker"} <= set(SERVICES)


def test_edge_command_serves_an_asgi_app_that_imports(tmp_path: Path) -> None:
    target = uvicorn_params()["app"]

    app = inspect_in_container_like_process(APP_PROBE, target, tmp_path)

    assert target == "relay.app:app"
    # uvicorn's own test for the ASGI 3 interface: an async __call__(scope, receive, send).
    assert app == {"async": True, "params": ["scope", "receive", "send"]}


def test_edge_command_uses_production_flags_that_are_installed() -> None:
    params = uvicorn_params()

    assert (params["host"], params["port"]) == ("0.0.0.0", EDGE_PORT)
    assert (params["loop"], params["http"], params["access_log"]) == (
        "uvloop",
        "relay.edge.protocol:EdgeHttpProtocol",
        False,
    )
    loop_factory = LOOP_FACTORIES[params["loop"]]
    assert loop_factory is not None
    assert callable(import_from_string(loop_factory))
    # httptools underneath, with bounded request heads (tests/security/test_slow_clients.py).
    assert issubclass(import_from_string(params["http"]), import_from_string(HTTP_PROTOCOLS["httptools"]))


def test_edge_limits_are_set_and_the_same_everywhere_the_edge_runs() -> None:
    params = uvicorn_params()
    args = command("edge")
    start = args.index(EDGE_LIMITS[0])

    assert (params["limit_concurrency"], params["timeout_keep_alive"]) == (1000, 5)
    # A stop waits this long at most, so that a deploy's gap stays within top.gg's retries.
    assert params["timeout_graceful_shutdown"] == 1
    assert params["proxy_headers"] is False, "uvicorn would believe X-Forwarded-For from 127.0.0.1"
    assert params["server_header"] is False, "every answer would tell what software runs the edge"
    assert args[start : start + len(EDGE_LIMITS)] == list(EDGE_LIMITS), (
        "relay/cli/devrun.py runs the edge otherwise"
    )
    cmd = json.loads(
        re.search(r"^CMD (\[.*?\])", DOCKERFILE, flags=re.MULTILINE | re.DOTALL)[1].replace("\\\n", "")
    )
    assert cmd == args, "the Dockerfile's CMD differs from docker-compose.yml's edge command"


def test_edge_publishes_its_port_and_checks_healthz_without_curl() -> None:
    edge = SERVICES["edge"]
    published = [
        str(p) if not isinstance(p, dict) else f"{p['published']}:{p['target']}" for p in edge["ports"]
    ]
    # This host only unless EDGE_PUBLISH says otherwise: a reverse proxy terminates TLS in front.
    assert f"${{EDGE_PUBLISH:-127.0.0.1:{EDGE_PORT}}}:{EDGE_PORT}" in published

    test = edge["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    code = test[test.index("-c") + 1]
    compile(code, "healthcheck", "exec")  # a syntax error would mark a healthy edge unhealthy
    assert f"127.0.0.1:{EDGE_PORT}/healthz" in code


def test_worker_command_resolves_to_worker_settings_arq_accepts(tmp_path: Path) -> None:
    args = command("worker")
    assert args[0] == "arq"
    target = arq_cli.make_context("arq", args[1:]).params["worker_settings"]

    worker = inspect_in_container_like_process(WORKER_PROBE, target, tmp_path)

    assert target == "worker.main.WorkerSettings"
    assert "redis_pool" in worker["kwargs"]
    assert worker["functions"] > 0, "arq refuses to start a worker without functions"
    # get_kwargs silently drops what Worker() does not take: a typo there is a setting ignored.
    assert worker["ignored"] == [], "WorkerSettings attributes that arq ignores"


def test_commands_are_console_scripts_of_installed_packages() -> None:
    scripts = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert {command("edge")[0], command("worker")[0]} <= scripts


def test_worker_scales_with_no_fixed_name_or_host_port() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker


@pytest.mark.parametrize("service", ["edge", "worker"])
def test_services_wait_for_a_healthy_redis(service: str) -> None:
    assert SERVICES[service]["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["edge", "worker"])
def test_every_setting_reaches_the_containers(service: str) -> None:
    env = environment(service)
    expected = {f"RELAY_{name.upper()}" for name in Settings.model_fields}

    missing = expected - set(env)

    assert not missing, f"add {sorted(missing)} to x-relay-env in docker-compose.yml"
    assert re.fullmatch(r"\$\{RELAY_SECRET:\?.+\}", env["RELAY_SECRET"]), "RELAY_SECRET must be required"
    assert env["RELAY_REDIS_URL"] == "redis://redis:6379/0"


def test_redis_keeps_an_append_only_file_on_a_named_volume() -> None:
    redis = SERVICES["redis"]
    args = command("redis")

    assert redis["image"].startswith("redis:")
    assert args[0] == "redis-server"
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    volume, _, mount = redis["volumes"][0].partition(":")
    assert mount == "/data"
    assert volume in COMPOSE["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, flags=re.MULTILINE)

    assert users, "the Dockerfile sets no USER, so the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_image_installs_the_package_without_baking_in_a_secret() -> None:
    assert re.search(r"^FROM python:3\.11-slim\b", DOCKERFILE, flags=re.MULTILINE)
    assert not re.search(r"^\s*(ENV|ARG)\b.*SECRET", DOCKERFILE, flags=re.MULTILINE | re.IGNORECASE)
    assert not re.search(r"pip install[^\n]*\s-e\s", DOCKERFILE), "the image installs the package, not a link"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git", "data"} <= set(ignored)


def test_worker_healthcheck_runs_the_health_command_which_fails_without_a_worker(tmp_path: Path) -> None:
    test = SERVICES["worker"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["RELAY_REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens: the check must say unhealthy
    done = subprocess.run(
        [sys.executable, *test[2:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("unhealthy: cannot read heartbeats from Redis")


HA: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.ha.yml").read_text())["services"]


def test_the_ha_example_has_a_primary_replicas_three_sentinels_and_points_the_relay_at_them() -> None:
    sentinels = sorted(name for name in HA if name.startswith("sentinel-"))
    replicas = [name for name in HA if name.startswith("redis-replica-")]
    assert len(sentinels) == 3 and replicas and "redis-primary" in HA
    for name in replicas:
        assert HA[name]["command"][-3:] == ["--replicaof", "redis-primary", "6379"]
    for service in ("edge", "worker"):
        env = HA[service]["environment"]
        assert sorted(env["RELAY_REDIS_SENTINELS"].split(",")) == [f"{name}:26379" for name in sentinels]
        assert (
            env["RELAY_MIN_REPLICAS"] == "${RELAY_MIN_REPLICAS:-1}"
        )  # an acknowledgement waits for a replica
        missing = {f"RELAY_{name.upper()}" for name in Settings.model_fields} - set(env)
        assert not missing, f"add {sorted(missing)} to x-relay-env in docker-compose.ha.yml"
    assert HA["edge"]["command"] == command("edge")  # the same production flags as the main file
    assert HA["worker"]["command"] == command("worker")
    assert HA["worker"]["healthcheck"]["test"] == SERVICES["worker"]["healthcheck"]["test"]


def test_each_sentinel_watches_the_primary_with_a_quorum_of_two() -> None:
    for name in (n for n in HA if n.startswith("sentinel-")):
        script = HA[name]["command"][-1]
        assert "sentinel monitor mymaster redis-primary 6379 2" in script
        assert "--sentinel" in script


@pytest.mark.parametrize("services", [SERVICES, HA], ids=["docker-compose.yml", "docker-compose.ha.yml"])
def test_the_edge_is_safe_by_default_on_the_host_and_keeps_metrics_off_the_webhook_port(
    services: dict[str, Any],
) -> None:
    edge = services["edge"]
    published = [
        str(p) if not isinstance(p, dict) else f"{p['published']}:{p['target']}" for p in edge["ports"]
    ]
    assert published == [f"${{EDGE_PUBLISH:-127.0.0.1:{EDGE_PORT}}}:{EDGE_PORT}"]
    assert edge["environment"]["RELAY_METRICS"] == "${RELAY_METRICS:-0.0.0.0:9101}"


def test_a_replaced_edge_stops_within_its_grace_so_a_redeploy_fits_top_gg_s_retries() -> None:
    # top.gg tries a vote at 0, 1, 3 and 7 s: the old edge's stop and the new one's start share 7 s
    # (docs/deploy.md, "Deploying a new version without losing a vote").
    assert SERVICES["edge"]["stop_grace_period"] == "3s"
    assert uvicorn_params()["timeout_graceful_shutdown"] < 3
