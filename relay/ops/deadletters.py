"""Dead letters as the operator tools read and replay them, over `worker.deadletter` (which writes them).

A replay enqueues the handler's job and deletes the dead letter in one atomic step, under a job id
of its own, with the original event id (``ctx["event_id"]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from arq.utils import timestamp_ms
from redis.asyncio import Redis

from relay.core.senders import split
from relay.ops.pacing import Pacer
from worker import deadletter, outcomes
from worker.deadletter import DeadLetter, list_dead
from worker.once import forget_effects
from worker.registry import Registry

PAGE = 500


async def iter_dead(redis: Redis, *, end: str = "+") -> AsyncIterator[DeadLetter]:
    """Every dead letter up to `end`, oldest first, read a page at a time."""
    start = "-"
    while True:
        letters = await list_dead(redis, start=start, end=end, count=PAGE)
        for letter in letters:
            yield letter
        if len(letters) < PAGE:
            return
        start = f"({letters[-1].id}"  # exclusive: the page after the last one read


def matches(letter: DeadLetter, handler: str | None, event_type: str | None) -> bool:
    return (handler is None or letter.handler == handler) and (
        event_type is None or letter.type == event_type
    )


def body_text(body: bytes) -> str:
    return body.decode(errors="replace")


def to_dict(letter: DeadLetter, *, traceback: bool) -> dict[str, Any]:
    """A dead letter for ``--json``; the body as text (Sphere's bodies are UTF-8 JSON)."""
    document: dict[str, Any] = {
        "id": letter.id,
        "entry_id": letter.entry_id,
        "type": letter.type,
        "source": split(letter.type)[0],
        "handler": letter.handler,
        "attempts": letter.attempts,
        "error_type": letter.error_type,
        "error": letter.error,
        "first_failure_ms": letter.first_failure_ms,
        "last_failure_ms": letter.last_failure_ms,
        "received_ms": letter.received_ms,
        "body": body_text(letter.body),
    }
    if traceback:
        document["traceback"] = letter.traceback
    return document


@dataclass
class ReplayReport:
    """What a dead-letter replay did, for the summary."""

    replayed: list[DeadLetter] = field(default_factory=list)
    already_queued: int = 0
    missing: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def refusal(letter: DeadLetter, registry: Registry, tasks: str) -> str | None:
    """Why `letter` cannot be replayed, or None."""
    if not letter.handler:
        return "it names no handler (the stream entry itself was malformed)"
    if registry.get(letter.handler) is None:
        # The workers would skip the job for a quarter of an hour, then dead-letter it again.
        return f"handler {letter.handler} is not in RELAY_TASKS={tasks} (renamed or removed?)"
    return None


async def replay_letters(
    redis: Redis,
    letters: Sequence[DeadLetter],
    *,
    registry: Registry,
    tasks: str,
    rate: float,
    expires_ms: int,
    report: ReplayReport | None = None,
    advance: Callable[[int], None] = lambda n: None,
    rerun_effects: bool = False,
) -> ReplayReport:
    """Replay `letters` at most `rate` a second; `relay dlq replay` and the admin page both use it.

    Each goes through `worker.deadletter.replay` (its job enqueued and the dead letter deleted in one
    atomic step, with its original event id); one whose handler is not in `registry` is refused.
    With `rerun_effects`, what ``ctx["once"]`` recorded for it is forgotten first (its side effects
    are done again). `report` fills as it goes, so a caller sees what was done if Redis fails halfway; the letters
    not reached then are still dead letters, untouched.
    """
    report = report if report is not None else ReplayReport()
    todo = []
    for letter in letters:
        reason = refusal(letter, registry, tasks)
        if reason is None:
            todo.append(letter)
        else:
            report.refused.append((letter.id, reason))
    pacer = Pacer(rate)
    for letter in todo:
        await pacer.wait(1)
        if rerun_effects:
            await forget_effects(redis, [(letter.entry_id, letter.handler)])
        if not await deadletter.replay(redis, letter, now_ms=timestamp_ms(), expires_ms=expires_ms):
            report.already_queued += 1
        report.replayed.append(letter)
        await outcomes.record_replay(
            redis, letter.entry_id, letter.handler, dead_id=letter.id, keep_ms=expires_ms
        )
        advance(1)
    return report
