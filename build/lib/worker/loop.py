"""The worker process's event loop: uvloop's, when it is installed (``uvicorn[standard]`` brings it).

arq's ``Worker`` takes the thread's event loop (``asyncio.get_event_loop()``) when it is built, which
arq's CLI does right after importing ``WorkerSettings``; `install_event_loop`, called as the settings
are built, puts this one there first. A worker spends most of its time in the event loop and in
socket calls to Redis (several round trips per job), where uvloop's C implementation costs less than
asyncio's: 6-10% less worker CPU per event in the benchmark.

`chain_stop_signals` (`worker.main`) reads the loop's table of signal handlers to run the bridge's
stop before arq's own handler. asyncio's Unix loops keep that table in ``_signal_handlers``;
uvloop keeps it out of Python's reach, so `_UvLoop` keeps the same table itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop that remembers its signal handlers, or asyncio's own loop without uvloop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()

    class _UvLoop(uvloop.Loop):
        """uvloop, keeping ``_signal_handlers`` (signal number to `asyncio.Handle`) as asyncio's loops do."""

        def __init__(self) -> None:
            super().__init__()
            self._signal_handlers: dict[int, asyncio.Handle] = {}

        def add_signal_handler(  # type: ignore[override]
            self, sig: int, callback: Callable[..., object], *args: Any
        ) -> None:
            super().add_signal_handler(sig, callback, *args)
            self._signal_handlers[sig] = asyncio.Handle(callback, args, self)

        def remove_signal_handler(self, sig: int) -> bool:
            self._signal_handlers.pop(sig, None)
            return bool(super().remove_signal_handler(sig))

    return _UvLoop()


def install_event_loop() -> None:
    """Make `new_event_loop` the thread's event loop, unless a loop is running (a test's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.set_event_loop(new_event_loop())
