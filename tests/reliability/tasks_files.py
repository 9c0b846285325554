"""Test tasks for fault runs: every handled vote is written to a file, outside Redis.

Redis is killed during these runs, so evidence of handling must not live in it. Each worker process
appends ``<entry id> <user id> <attempt> <pid>`` lines to ``<pid>.log`` in the directory named by
`HANDLED_DIR_ENV`; a line is written and flushed before the handler returns, so it survives a
kill -9 of the worker (the kernel holds it) and is there whenever the job counts as done.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from relay.core.events import VoteAdd
from worker import Context, Permanent, on

HANDLED_DIR_ENV = "SPHERE_TEST_HANDLED_DIR"
FAILING_SUFFIX = "7"
"""`refuse_sevens` dead-letters every vote whose user id ends with this."""

_out: IO[str] | None = None


async def startup(ctx: dict[str, Any]) -> None:
    global _out
    directory = Path(os.environ[HANDLED_DIR_ENV])
    _out = (directory / f"{os.getpid()}.log").open("a", encoding="ascii")


async def shutdown(ctx: dict[str, Any]) -> None:
    if _out is not None:
        _out.close()


@on(VoteAdd, timeout=1, backoff=0.1)
async def record_vote(ctx: Context, event: VoteAdd) -> None:
    assert _out is not None, "startup() opens the file"
    _out.write(f"{ctx['event_id']} {event.user_id} {ctx['attempt']} {os.getpid()}\n")
    _out.flush()  # into the kernel: a kill -9 of this process cannot lose it now


@on(VoteAdd, timeout=1, backoff=0.1)
async def refuse_sevens(ctx: Context, event: VoteAdd) -> None:
    if event.user_id.endswith(FAILING_SUFFIX):
        raise Permanent(f"user {event.user_id} is refused on purpose")
