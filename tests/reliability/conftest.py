"""Fixtures for the fault tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.tasks_files import HANDLED_DIR_ENV


@pytest.fixture
def handled_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where `tests.reliability.tasks_files` writes what it handled, outside the Redis being killed."""
    directory = tmp_path / "handled"
    directory.mkdir()
    monkeypatch.setenv(HANDLED_DIR_ENV, str(directory))  # the worker processes inherit it
    return directory
