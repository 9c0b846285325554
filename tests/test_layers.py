"""The import contracts between the layers (pyproject.toml, ``[tool.importlinter]``) hold, and a
violating import breaks them with a message naming both modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the sources and pyproject.toml, to break on purpose."""
    for name in ("relay", "worker"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}  # noqa: E402, F401\n")


def test_the_sources_keep_every_contract(tree: Path) -> None:
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("importer", "line", "importer_name", "imported_name"),
    [
        ("worker/bridge.py", "from relay.edge import ingest", "worker.bridge", "relay.edge.ingest"),
        ("worker/jobs.py", "from relay.cli import common", "worker.jobs", "relay.cli.common"),
        ("relay/core/events.py", "from worker import registry", "relay.core.events", "worker.registry"),
        (
            "relay/core/settings.py",
            "from relay.edge import errors",
            "relay.core.settings",
            "relay.edge.errors",
        ),
        ("relay/edge/signature.py", "from worker import keys", "relay.edge.signature", "worker.keys"),
        ("relay/edge/probes.py", "from relay.ops import timespec", "relay.edge.probes", "relay.ops.timespec"),
        ("relay/admin/queries.py", "from relay.cli import dlq", "relay.admin.queries", "relay.cli.dlq"),
        ("relay/ops/stats.py", "from relay.admin import chart", "relay.ops.stats", "relay.admin.chart"),
    ],
)
def test_an_import_against_the_layers_fails_naming_both_modules(
    tree: Path, importer: str, line: str, importer_name: str, imported_name: str
) -> None:
    _add_import(tree / importer, line)
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert f"{importer_name} -> {imported_name}" in result.stdout
