"""The no-op handler's traces: buffered in the worker, written within a few ms, read back whole."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.traces import FLUSH_SECONDS, Traces, TraceWriter


def test_traces_are_written_soon_after_the_first_and_read_back(tmp_path: Path) -> None:
    traces, writer = Traces(tmp_path), TraceWriter(tmp_path)

    async def handlers() -> tuple[int, int]:
        writer.started("1-0", 1700000000.25)
        writer.started("2-0", 1700000000.5)
        buffered = traces.count()  # nothing is written at once
        await asyncio.sleep(FLUSH_SECONDS * 5)
        written = traces.count()
        writer.started("3-0", 1700000001.0)
        writer.close()  # at the worker's shutdown: what is buffered is written
        return buffered, written

    assert asyncio.run(handlers()) == (0, 2)
    assert traces.starts() == {"1-0": 1700000000.25, "2-0": 1700000000.5, "3-0": 1700000001.0}


def test_a_line_being_written_a_second_run_and_lines_before_a_clear_do_not_count(tmp_path: Path) -> None:
    traces = Traces(tmp_path)
    (tmp_path / "started-1.txt").write_text("1-0 10.0\n2-0 11.0\n1-0 12.0\n3-0 1")  # 3-0: half written
    (tmp_path / "started-2.txt").write_text("4-0 13.0\n")

    assert traces.count() == 4
    assert traces.starts() == {"1-0": 10.0, "2-0": 11.0, "4-0": 13.0}  # the first run of 1-0 counts

    traces.clear()
    assert traces.count() == 0
    with (tmp_path / "started-1.txt").open("a") as file:
        file.write("4.0\n5-0 14.0\n")  # 3-0's line completed, and one more
    assert traces.count() == 2
    assert traces.starts() == {"3-0": 14.0, "5-0": 14.0}
