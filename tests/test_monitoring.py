"""The `monitoring` compose profile: Prometheus's config, Grafana's provisioning and dashboard.

Docker cannot run here, so these tests read the files and hold them to the code: every target is a
compose service on the port the code listens on, every file a service mounts exists, and every
metric (and label) a PromQL expression names is one the edge or a worker really exports, read from
their real registries (with the suffixes prometheus-client appends).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis

from relay.core.settings import Settings, listen_address
from relay.edge.metrics import EdgeMetrics
from tests.conftest import make_settings
from tests.worker.helpers import store, vote_body
from worker import Context, Registry
from worker.bridge import Bridge
from worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS: dict[str, Any] = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
DATASOURCES: dict[str, Any] = yaml.safe_load(
    (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
)
PROVIDERS: dict[str, Any] = yaml.safe_load(
    (MONITORING / "grafana/provisioning/dashboards/sphere-relay.yml").read_text()
)
DASHBOARD_FILE = MONITORING / "grafana/dashboards/sphere-relay.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())

PROMETHEUS_OWN = {"up"}
"""Series Prometheus writes itself for every target."""
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
}  # fmt: skip


# -- what the code exports ------------------------------------------------------------------------

Exported = dict[str, set[str]]
"""Sample name -> its label names, from the real registries."""


def exported(*registries: Any) -> tuple[Exported, dict[tuple[str, str], set[str]]]:
    """Sample names with their label names, and the values each (sample, label) takes."""
    names: Exported = {}
    values: dict[tuple[str, str], set[str]] = {}
    for registry in registries:
        for family in registry.collect():
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
                for label, value in sample.labels.items():
                    values.setdefault((sample.name, label), set()).add(value)
    return names, values


@pytest.fixture
async def exports(redis: Redis, settings: Settings) -> tuple[Exported, dict[tuple[str, str], set[str]]]:
    """What an edge and a worker whose bridge has looked at Redis export."""
    registry = Registry()

    @registry.on("VOTE_ADD")
    async def reward(ctx: Context, event: object) -> None:
        pass

    bridge = Bridge(redis, registry, settings)
    await bridge.ensure_group()
    await store(redis, vote_body())
    await bridge.check_backlog()
    await bridge.queue_is_full()
    worker = WorkerMetrics(handler.name for handler in registry)
    worker.bridge = bridge
    return exported(EdgeMetrics().registry, worker.registry)


# -- PromQL ---------------------------------------------------------------------------------------

Selector = tuple[str, list[tuple[str, str, str]]]
"""A metric name and its label matchers ``(label, operator, value)``."""


def selectors(expr: str) -> Iterator[Selector]:
    """The metric selectors in a PromQL expression (functions, keywords and grouping labels left out)."""
    text = re.sub(r"\[[^\]]*\]", "", expr)  # range durations, e.g. [$__rate_interval]
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping label lists
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", text):
        name, braces = match.group(1), match.group(2)
        after = text[match.end() :].lstrip()
        if after.startswith("(") or name in PROMQL_WORDS:
            continue  # a function call or a keyword
        matchers = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"', braces or "")
        yield name, matchers


def grouping_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
        if label.strip()
    }


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]


def test_the_promql_reader_finds_names_matchers_and_skips_functions() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (handler, le) (rate(relay_x_bucket{outcome=~"a|b", h="c"}[5m])))'
        " / on(job) count(up == 1)"
    )

    assert list(selectors(expr)) == [
        ("relay_x_bucket", [("outcome", "=~", "a|b"), ("h", "=", "c")]),
        ("up", []),
    ]
    assert grouping_labels(expr) == {"handler", "le"}


# -- the dashboard and the code -------------------------------------------------------------------


@pytest.mark.anyio
async def test_every_metric_the_dashboard_names_is_exported(exports: tuple[Exported, Any]) -> None:
    names, _ = exports
    named = {name for expr in dashboard_exprs() for name, _ in selectors(expr)}

    assert named, "no metric found in the dashboard"
    assert named - names.keys() - PROMETHEUS_OWN == set()


@pytest.mark.anyio
async def test_every_label_and_label_value_the_dashboard_names_exists(
    exports: tuple[Exported, dict[tuple[str, str], set[str]]],
) -> None:
    names, values = exports
    for expr in dashboard_exprs():
        used = [(name, matchers) for name, matchers in selectors(expr) if name not in PROMETHEUS_OWN]
        for name, matchers in used:
            for label, operator, value in matchers:
                assert label in names[name], f"{name} has no label {label!r}: {expr}"
                if operator in ("=", "=~"):
                    known = values[name, label]
                    wanted = value.split("|") if operator == "=~" else [value]
                    assert set(wanted) <= known, (
                        f"{name}{{{label}}} never takes {set(wanted) - known}: {expr}"
                    )
        labels = set().union(*(names[name] for name, _ in used)) if used else set()
        assert grouping_labels(expr) <= labels, expr


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    named = {name for expr in dashboard_exprs() for name, _ in selectors(expr)}

    assert {
        "relay_webhook_requests_total",  # ingest rate and outcomes
        "relay_group_lag",  # lag
        "relay_handler_runs_total",  # handler errors
        "relay_dead_letters_total",  # dead letters
    } <= named
    assert any('outcome=~"retry|dead|error"' in expr for expr in dashboard_exprs())


def test_the_dashboard_is_well_formed_and_uses_the_provisioned_datasource() -> None:
    [datasource] = DATASOURCES["datasources"]
    panels = DASHBOARD["panels"]

    assert DASHBOARD["uid"] and DASHBOARD["title"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs)
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]


# -- Prometheus, Grafana and compose --------------------------------------------------------------


def scrape_job(name: str) -> dict[str, Any]:
    [job] = [job for job in PROMETHEUS["scrape_configs"] if job["job_name"] == name]
    return job


def test_prometheus_scrapes_the_edge_on_its_compose_metrics_port() -> None:
    job = scrape_job("relay-edge")
    [target] = [t for config in job["static_configs"] for t in config["targets"]]
    host, port = target.split(":")
    given = SERVICES["edge"]["environment"]["RELAY_METRICS"]
    default = re.fullmatch(r"\$\{RELAY_METRICS:-(.+)\}", given)
    assert default, f"the edge service should default RELAY_METRICS, not {given!r}"
    metrics_host, metrics_port = listen_address(
        make_settings("redis://127.0.0.1:1/0", metrics=default[1]).metrics
    )
    edge_command = SERVICES["edge"]["command"]

    assert host == "edge" and host in SERVICES
    assert int(port) == metrics_port
    assert metrics_host == "0.0.0.0"  # reachable from the prometheus container
    assert edge_command[edge_command.index("--port") + 1] != port  # not on the public webhook port
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_finds_every_worker_replica_by_its_service_name() -> None:
    [dns] = scrape_job("relay-worker")["dns_sd_configs"]
    given = SERVICES["worker"]["environment"]["RELAY_WORKER_METRICS"]
    default = re.fullmatch(r"\$\{RELAY_WORKER_METRICS:-(.+)\}", given)
    assert default, f"the worker service should default RELAY_WORKER_METRICS, not {given!r}"
    host, port = listen_address(
        make_settings("redis://127.0.0.1:1/0", worker_metrics=default[1]).worker_metrics
    )

    assert dns["type"] == "A"  # one record per replica with --scale worker=N
    assert dns["names"] == ["worker"] and "worker" in SERVICES
    assert dns["port"] == port
    assert host == "0.0.0.0"  # reachable from the prometheus container, not only from the replica itself


def test_monitoring_services_are_in_their_profile_only() -> None:
    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["monitoring"]
    for name in ("redis", "edge", "worker"):
        assert "profiles" not in SERVICES[name]
    for name in ("prometheus", "grafana"):
        for published in SERVICES[name]["ports"]:
            assert str(published).startswith("127.0.0.1:"), f"{name} is published beyond this host"


def mounts(service: str) -> dict[str, str]:
    """Container path -> host path (relative to the repository) for the service's bind mounts."""
    found = {}
    for volume in SERVICES[service]["volumes"]:
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = source
    return found


def test_every_mounted_file_exists_where_the_service_reads_it() -> None:
    prometheus = mounts("prometheus")
    config = next(a for a in SERVICES["prometheus"]["command"] if a.startswith("--config.file="))
    grafana = mounts("grafana")
    [provider] = PROVIDERS["providers"]
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]

    assert (ROOT / prometheus[config.split("=", 1)[1]]).is_file()
    assert (ROOT / grafana["/etc/grafana/provisioning"] / "datasources/prometheus.yml").is_file()
    assert (ROOT / grafana["/etc/grafana/provisioning"] / "dashboards/sphere-relay.yml").is_file()
    dashboards = grafana[provider["options"]["path"]]
    assert (ROOT / dashboards / DASHBOARD_FILE.name) == DASHBOARD_FILE
    assert home == f"{provider['options']['path']}/{DASHBOARD_FILE.name}"


def test_grafana_reads_the_prometheus_service() -> None:
    [datasource] = DATASOURCES["datasources"]

    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in SERVICES["prometheus"]["ports"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
@pytest.mark.parametrize("profile", [[], ["--profile", "monitoring"]], ids=["default", "monitoring"])
def test_docker_compose_accepts_the_file(profile: list[str]) -> None:
    env = {**os.environ, "RELAY_SECRET": "compose-check-secret"}

    done = subprocess.run(
        ["docker-compose", *profile, "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr


def test_the_metrics_settings_reach_the_containers() -> None:
    for service in ("edge", "worker"):
        environment = SERVICES[service]["environment"]
        assert {"RELAY_METRICS", "RELAY_WORKER_METRICS", "RELAY_WORKER_METRICS_PORTS"} <= set(environment)
    # Outside compose a worker keeps its metrics to its own host.
    assert make_settings("redis://127.0.0.1:1/0").worker_metrics == "127.0.0.1:9100"
