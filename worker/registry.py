"""The handler registry: ``@on("VOTE_ADD")`` records a function and the events it wants.

``@on(Vote)`` (or ``@on(Review)``) stands for every sender's votes (reviews), and the handler receives
the normalized `relay.core.events.Vote`; ``@on(VoteAdd)``, ``@on("topgg:vote.create")`` and the like
receive the sender's own model.

Each handler becomes its own arq job per event, so handlers of one event retry independently. A
handler's name (``name=``, else its function name) names that job, appears in dead letters and is
what ``relay dlq replay --handler`` selects, so it must be unique in a registry. Queued jobs carry
the name: give ``name="stable-name"`` to rename the function freely; a handler whose name changes
or goes leaves its waiting jobs as ``UnknownHandler`` dead letters (after a grace period for workers
of other versions), never silently. `worker.checks` refuses handlers that cannot work at start-up.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from relay.core.events import Payload, Review, Vote
from relay.core.senders import types_of
from worker.backoff import MAX_DELAY_SECONDS

WILDCARD = "*"
"""Receives every event, including types this version of the relay does not know."""

DEFAULT_MAX_ATTEMPTS = 12
"""With the default backoff and cap: 1 h 39 min to 2 h 12 min from the first attempt to the dead
letter (docs/handlers.md has the table), past the ordinary outages of the services handlers call."""
DEFAULT_BACKOFF = 10.0
DEFAULT_MAX_BACKOFF = MAX_DELAY_SECONDS
DEFAULT_TIMEOUT = 30.0

F = TypeVar("F", bound=Callable[..., Any])

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
"""A handler name: letters, digits, ``_``, ``.`` and ``-`` (it goes into job ids and metric labels)."""


@dataclass(frozen=True, slots=True)
class Handler:
    """One registered handler and its options."""

    name: str
    func: Callable[..., Any]
    event_types: tuple[str, ...]
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Attempts in all, the first included; then the event is dead-lettered."""
    backoff: float = DEFAULT_BACKOFF
    """Base seconds of the exponential backoff between attempts; 0 retries at once."""
    max_backoff: float = DEFAULT_MAX_BACKOFF
    """The longest wait between two attempts (the backoff's cap)."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds one attempt may run; a longer one counts as failed."""
    future: bool = False
    """Event type names this relay does not know are accepted (types Sphere will send later)."""
    scheduled: bool = False
    """Never queued for new events: it runs only when another handler schedules it (``ctx["later"]``)."""
    concurrency: int | None = None
    """Runs of this handler at once in one worker process (None: only ``RELAY_WORKER_CONCURRENCY``)."""
    normalized: bool = False
    """Registered for `Vote` or `Review`: receives the normalized event wherever there is one."""

    @property
    def is_async(self) -> bool:
        """``async def`` handlers run on the worker's loop; plain ``def`` ones in a thread."""
        call = getattr(self.func, "__call__", None)  # noqa: B004 - an object whose __call__ is async
        return inspect.iscoroutinefunction(self.func) or inspect.iscoroutinefunction(call)


Target = str | type[Payload] | type[Vote] | type[Review]
"""What ``@on`` takes: a stored type name, a sender's model class, or `Vote` / `Review`."""


def event_names(target: Target) -> tuple[str, ...]:
    """The stored type names `target` stands for: a name; a model class via its type field's Literal
    (``topgg:`` and the like added for senders other than Sphere); every sender's votes for `Vote`."""
    if isinstance(target, str):
        if not target:
            raise ValueError("an event type name must not be empty")
        return (target,)
    if isinstance(target, type) and (issubclass(target, Payload) or target in (Vote, Review)):
        try:
            return types_of(target)
        except TypeError:
            raise TypeError(
                f"{target.__name__} accepts any event type; register it as {WILDCARD!r}"
            ) from None
    raise TypeError(f"expected an event type name, an event model class, Vote or Review, got {target!r}")


def _check_options(max_attempts: int, backoff: float, max_backoff: float, timeout: float) -> None:
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
    if not math.isfinite(backoff) or backoff < 0:
        raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
    if not math.isfinite(max_backoff) or max_backoff < 0:
        raise ValueError(f"max_backoff must be >= 0 seconds, got {max_backoff!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")


class Registry:
    """Handlers by name, and the handlers for each event type in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def on(
        self,
        *events: Target,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        name: str | None = None,
        future: bool = False,
        scheduled: bool = False,
        concurrency: int | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function for one or more event types (names or model classes).

        ``"*"`` receives every event. A type name the relay does not know is refused at start-up
        unless ``future=True``. `name` (default: the function's name) is the handler's name in job
        ids and dead letters. A ``scheduled=True`` handler gets no job of its own for new events: another
        handler schedules it with ``ctx["later"]``. `concurrency` caps this handler's runs at once per
        worker process. The function is returned unchanged, so it stays callable in tests.
        """
        if not events:
            raise TypeError('@on needs at least one event type, e.g. @on("VOTE_ADD")')
        names = tuple(dict.fromkeys(n for target in events for n in event_names(target)))
        _check_options(max_attempts, backoff, max_backoff, timeout)
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ValueError(f"concurrency must be an integer >= 1 or None, got {concurrency!r}")
        if name is not None and not (isinstance(name, str) and NAME_PATTERN.fullmatch(name)):
            raise ValueError(
                f"name must be 1-100 letters, digits, '_', '.' or '-' (not starting with '.' or '-'), got {name!r}"
            )

        def register(func: F) -> F:
            handler_name = name if name is not None else getattr(func, "__name__", None)
            if not callable(func) or not isinstance(handler_name, str):
                raise TypeError(f"@on decorates a function, got {func!r}")
            self.add(
                Handler(
                    name=handler_name,
                    func=func,
                    event_types=names,
                    max_attempts=max_attempts,
                    backoff=float(backoff),
                    max_backoff=float(max_backoff),
                    timeout=float(timeout),
                    future=future,
                    scheduled=scheduled,
                    concurrency=concurrency,
                    normalized=any(target in (Vote, Review) for target in events),
                )
            )
            return func

        return register

    def add(self, handler: Handler) -> None:
        """Register `handler`; a second handler with the same name is refused."""
        existing = self._handlers.get(handler.name)
        if existing is not None:
            if existing == handler:
                return  # the same module imported twice
            raise ValueError(
                f"a handler named {handler.name!r} is already registered; "
                "give each handler its own name, and list several types in one @on(...)"
            )
        self._handlers[handler.name] = handler

    def for_type(self, event_type: str) -> list[Handler]:
        """The handlers an event of `event_type` goes to (its own and the ``"*"`` ones), in registration
        order; ``scheduled`` handlers only run when scheduled, so they are left out."""
        return [
            h
            for h in self._handlers.values()
            if not h.scheduled and (event_type in h.event_types or WILDCARD in h.event_types)
        ]

    def widest(self) -> int:
        """The most jobs one event can become: the handlers of the best-served type (at least 1)."""
        named = {t for h in self._handlers.values() for t in h.event_types if t != WILDCARD}
        return max((len(self.for_type(t)) for t in named | {WILDCARD}), default=0) or 1

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def __iter__(self) -> Iterator[Handler]:
        return iter(list(self._handlers.values()))

    def __len__(self) -> int:
        return len(self._handlers)


default_registry = Registry()
"""The registry ``worker.on`` writes to and ``arq worker.main.WorkerSettings`` runs."""

on = default_registry.on
