"""The compose file's `admin` service: the page, published on the host's 127.0.0.1 only."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_admin_service_runs_relay_admin_published_on_loopback_only() -> None:
    admin = SERVICES["admin"]
    assert admin["command"] == ["relay", "admin"]
    assert admin["ports"] == ["127.0.0.1:3267:3267"]
    assert admin["environment"]["RELAY_ADMIN_ADDRESS"] == "0.0.0.0:3267"
    assert admin["profiles"] == ["admin"], "started on request, with a token set"
    assert admin["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_wheel_ships_the_pages() -> None:
    """The image installs a wheel: every template and static file must be package data."""
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = ROOT / "relay" / "admin"
    shipped = {path for pattern in patterns["relay.admin"] for path in package.glob(pattern)}
    needed = {p for p in [*package.glob("templates/*"), *package.glob("static/*")] if p.is_file()}
    assert needed and needed <= shipped
