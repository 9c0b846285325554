"""The no-op handler's traces: buffered in the worker, written within a few ms, read back whole."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.traces import FLUSH_SECONDS, Traces, TraceWriter


def test_traces_are_written_soon_after_the_first_and_read_back(tmp_path: Path) -> None:
    traces, writer = Traces(tmp_path), TraceWriter(tmp_path)

    async def handlers() -> int:
        writer.started("1-0", 1700000000.25)
        writer.started("2-0", 1700000000.5)
        buffered = traces.count()  # nothing is written at once
        await asyncio.sleep(FLUSH_SECONDS * 5)
        return buffered

    assert asyncio.run(handlers()) == 0
    assert traces.count() == 2
    assert traces.starts() == {"1-0": 1700000000.25, "2-0": 1700000000.5}


def test_a_line_being_written_and_a_second_run_do_not_count_twice(tmp_path: Path) -> None:
    traces = Traces(tmp_path)
    (tmp_path / "started-1.txt").write_text("1-0 10.0\n2-0 11.0\n1-0 12.0\n3-0 1")  # 3-0: half written
    (tmp_path / "started-2.txt").write_text("4-0 13.0\n")

    assert traces.count() == 4
    assert traces.starts() == {"1-0": 10.0, "2-0": 11.0, "4-0": 13.0}  # the first run of 1-0 counts

    traces.clear()
    assert traces.count() == 0 and list(tmp_path.iterdir()) == []
