"""Fixtures for tests that drive real worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SECRET
from tests.support.worker_process import WorkerPool, worker_pool


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerPool]:
    """Starts ``arq worker.main.WorkerSettings`` processes on the test's Redis; kills them at the end."""
    with worker_pool(tmp_path, {"redis_url": redis_url, "secret": SECRET, "log_level": "INFO"}) as pool:
        yield pool
