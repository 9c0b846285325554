"""A test process's environment without the developer's machine in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def isolate(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """Unset every RELAY_* variable and work in `cwd`, so no .env or exported setting leaks in."""
    for name in [name for name in os.environ if name.startswith("RELAY_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(cwd)
