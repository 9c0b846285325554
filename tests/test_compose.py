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
    assert SERVICES["edge"]["stop_grace_period"] == HA["edge"]["stop_grace_period"] == "3s"
    assert uvicorn_params()["timeout_graceful_shutdown"] < 3


# Both stacks, and every compose command the docs give (issue 24: stacks that cannot trample each other).

HA_FILE = "docker-compose.ha.yml"
HA_PROJECT = "sphere-relay-ha"
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

COMMON_GLOBAL = {"-f": True, "--file": True, "-p": True, "--project-name": True, "--profile": True}
"""Options before the subcommand that docker-compose 1.29 and Compose v2 both take (True: with a value)."""

COMMON_SUBCOMMANDS: dict[str, dict[str, bool]] = {
    "up": {"-d": False, "--detach": False, "--build": False, "--no-start": False, "--scale": True,
           "--remove-orphans": False, "--no-deps": False, "--force-recreate": False},
    "down": {"-v": False, "--volumes": False, "--remove-orphans": False, "-t": True, "--timeout": True},
    "stop": {"-t": True, "--timeout": True},
    "start": {},
    "restart": {"-t": True, "--timeout": True},
    "ps": {"-a": False, "--all": False, "-q": False, "--quiet": False, "--services": False},
    "logs": {"-f": False, "--follow": False, "--tail": True, "-t": False, "--timestamps": False},
    "exec": {"-T": False, "-u": True, "--user": True, "-e": True},
    "run": {"--rm": False, "-T": False, "-e": True},
    "pull": {}, "build": {"--pull": False, "--no-cache": False},
    "config": {"-q": False, "--quiet": False, "--services": False},
    "port": {}, "kill": {"-s": True}, "rm": {"-f": False, "-s": False, "-v": False}, "version": {},
}  # fmt: skip
"""Subcommands and their options that both clients take. v2-only ones (`--wait`, `ls`, `cp`, `watch`)
would fail for a user of Debian's docker-compose, which the docs tell to type the same commands."""

TAKES_A_COMMAND = {"exec", "run"}  # after the service: the container's command, not compose's options
TAKES_ONE_SERVICE = {"port"}  # then a port


def doc_text(path: Path) -> str:
    """The doc, with inline code spans that wrap onto the next line joined into one line."""
    return re.sub(r"`[^`\n]+\n[^`\n]+`", lambda m: m[0].replace("\n", " "), path.read_text())


def doc_code(path: Path) -> str:
    """The doc's code, one piece a line: fenced and indented blocks, and inline code spans."""
    text = doc_text(path)
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    indented = re.findall(r"^ {4}(\S.*)$", prose, flags=re.MULTILINE)
    spans = re.findall(r"`([^`\n]+)`", prose)
    return "\n".join([*fenced, *indented, *spans])


def compose_commands(text: str) -> list[list[str]]:
    """Each `docker compose ...` in `text`, as the words after `docker compose`.

    A command ends at the end of its line or code span, at a `#` comment, or at the `)` or `"` that
    closes a `$(...)` around it."""
    commands = []
    for line in text.splitlines():
        for found in re.finditer(r"docker compose\b", line):
            words = shlex.split(re.split(r"[`)\";|&]| #", line[found.end() :], maxsplit=1)[0])
            if words:  # else the client named in prose
                commands.append(words)
    return commands


def services_of(file: str) -> set[str]:
    return set(yaml.safe_load((ROOT / file).read_text())["services"])


def check_command(words: list[str]) -> list[str]:
    """What in `words` (after `docker compose`) either client would refuse, or that points a command at
    the wrong stack; an empty list when nothing."""
    problems: list[str] = []
    options: dict[str, str] = {}
    rest = list(words)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option not in COMMON_GLOBAL:
            return [f"global option {option}"]
        options[option.lstrip("-")[0]] = rest.pop(0) if COMMON_GLOBAL[option] else ""
    if not rest or rest[0] not in COMMON_SUBCOMMANDS:
        return [f"subcommand {rest[:1]}"]
    file, project = options.get("f", "docker-compose.yml"), options.get("p")
    if (file == HA_FILE) != (project == HA_PROJECT):
        problems.append(f"{HA_FILE} goes with -p {HA_PROJECT}, and only it")
    subcommand, allowed = rest[0], COMMON_SUBCOMMANDS[rest[0]]
    services = []
    words_left = rest[1:]
    while words_left:
        word = words_left.pop(0)
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name not in allowed:
                problems.append(f"{subcommand} {name}")
            elif allowed[name] and "=" not in word:
                words_left.pop(0)
            continue
        services.append(word)
        if subcommand in TAKES_A_COMMAND | TAKES_ONE_SERVICE:
            break
    unknown = set(services) - services_of(file)
    if unknown:
        problems.append(f"services {sorted(unknown)} are not in {file}")
    return problems


DOC_COMMANDS = [
    pytest.param(words, id=f"{path.name}:{' '.join(words)[:60]}")
    for path in USER_DOCS
    for words in compose_commands(doc_code(path))
]


def test_the_docs_give_compose_commands_for_both_stacks() -> None:
    assert len(DOC_COMMANDS) >= 20
    assert any(HA_FILE in param.values[0] for param in DOC_COMMANDS)


@pytest.mark.parametrize("words", DOC_COMMANDS)
def test_every_compose_command_in_the_docs_works_with_both_clients_on_its_own_stack(words: list[str]) -> None:
    assert check_command(words) == []


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("up --wait", "up --wait"),
        ("ls", "subcommand ['ls']"),
        (f"-f {HA_FILE} up -d", f"{HA_FILE} goes with -p {HA_PROJECT}, and only it"),
        (f"-p {HA_PROJECT} ps", f"{HA_FILE} goes with -p {HA_PROJECT}, and only it"),
        (f"-p {HA_PROJECT} -f {HA_FILE} exec redis redis-cli", f"services ['redis'] are not in {HA_FILE}"),
    ],
)
def test_the_command_check_catches_what_would_fail(command: str, problem: str) -> None:
    assert problem in check_command(shlex.split(command))


def test_no_user_doc_writes_a_compose_command_for_one_client_only() -> None:
    """The docs write `docker compose`; `docker-compose` (Debian's 1.29) only where they say to type it instead."""
    for path in USER_DOCS:
        text = doc_text(path)
        assert not re.findall(
            r"docker-compose (?:-|up|down|exec|ps|logs|stop|start|run|pull|build)\b", text
        ), path


def test_the_docs_say_once_which_client_to_type_where_only_docker_compose_1_29_exists() -> None:
    readme, deploy = doc_text(ROOT / "README.md"), doc_text(ROOT / "docs" / "deploy.md")
    for text in (readme, deploy):
        assert re.search(r"type `docker-compose` instead", text)
    # The README says so before its first compose command, where a v1 user reads it.
    assert readme.index("type `docker-compose` instead") < readme.index("docker compose up")


@pytest.mark.parametrize("services", [SERVICES, HA], ids=["docker-compose.yml", "docker-compose.ha.yml"])
def test_both_stacks_run_relay_workers_workers(services: dict[str, Any]) -> None:
    assert services["worker"]["scale"] == "${RELAY_WORKERS:-2}"


@pytest.mark.parametrize("file", ["docker-compose.yml", HA_FILE])
def test_no_file_names_its_project_which_docker_compose_1_29_refuses(file: str) -> None:
    """The HA stack's own project comes from `-p` (checked in the docs above), not a top-level `name:`."""
    assert "name" not in yaml.safe_load((ROOT / file).read_text())


def test_the_ha_file_tells_its_project_name_in_the_commands_it_shows() -> None:
    header = (ROOT / HA_FILE).read_text().split("\nx-relay-env")[0]
    shown = compose_commands(header)
    assert shown and all(check_command(words) == [] and HA_PROJECT in words for words in shown)


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda path: path.name)
def test_no_user_doc_names_a_path_outside_the_repository(path: Path) -> None:
    text = path.read_text()
    assert "shared/docker" not in text and "stand-in-images" not in text
    for relative in re.findall(r"(?:\.\./)+[\w./-]*", text):
        assert (path.parent / relative).resolve().is_relative_to(ROOT), relative


def test_the_migration_backup_folder_stays_out_of_git_and_the_image() -> None:
    assert "./redis-backup" in (ROOT / "docs" / "deploy.md").read_text()
    assert "redis-backup/" in (ROOT / ".gitignore").read_text().split()
    assert "redis-backup" in (ROOT / ".dockerignore").read_text().split()
