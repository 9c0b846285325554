"""Mistakes in a tasks module, caught before a worker takes any event: one line per problem.

`import_tasks` imports the module (``RELAY_TASKS``) and turns a syntax or import error into one line
with the file and line; `check_registry` lists every handler that cannot work (an unknown event type,
a signature that cannot take ``(ctx, event)``, a generator). Both the worker's start-up and the
``relay`` commands that load the handlers use them.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from relay.core.senders import known_types, split
from worker.registry import WILDCARD, Handler, Registry


class TasksError(ValueError):
    """The tasks module cannot be used; `lines` says why, one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def _shown(path: str) -> str:
    """`path` relative to the working directory when it is below it (as people type it)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def location(func: Callable[..., Any]) -> str:
    """``file:line`` where `func` is defined, or its qualified name when Python cannot tell."""
    target = inspect.unwrap(func)
    try:
        path = inspect.getsourcefile(target)
        _, line = inspect.getsourcelines(target)
    except (OSError, TypeError):
        return getattr(target, "__qualname__", repr(target))
    return f"{_shown(path)}:{line}" if path else getattr(target, "__qualname__", repr(target))


def _where_raised(exc: BaseException, origin: str | None) -> str:
    """``file:line`` of the failing line: in the tasks file if the traceback passes through it."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_shown(exc.filename)}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if origin and os.path.abspath(f.filename) == os.path.abspath(origin)]
    if not (own or frames):
        return "?"
    frame = (own or frames)[-1]
    return f"{_shown(frame.filename)}:{frame.lineno}"


def import_tasks(name: str) -> ModuleType:
    """Import the tasks module `name`, or raise `TasksError` with one line naming file:line."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec else None
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise TasksError([f"RELAY_TASKS={name}: no such module"]) from None
        where = _where_raised(exc, origin)
        raise TasksError([f"{where}: cannot import RELAY_TASKS={name}: {exc}"]) from None
    except SyntaxError as exc:
        where = _where_raised(exc, origin)
        raise TasksError([f"{where}: RELAY_TASKS={name} has a {type(exc).__name__}: {exc.msg}"]) from None
    except Exception as exc:  # the user's module failed at import: say where, without a traceback
        where = _where_raised(exc, origin)
        message = f"{type(exc).__name__}: {exc}"
        raise TasksError([f"{where}: cannot import RELAY_TASKS={name}: {message}"]) from None


def _takes_ctx_and_event(func: Callable[..., Any]) -> str | None:
    """Why `func` cannot be called as ``func(ctx, event)``, or None when it can."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None  # a builtin Python cannot describe: the first run tells
    try:
        signature.bind(object(), object())
    except TypeError:
        return f"its signature {signature} cannot take (ctx, event); define it as (ctx, event)"
    return None


def check_handler(handler: Handler) -> list[str]:
    """Every reason `handler` cannot work, one line each (``file:line: name: what to change``)."""
    problems: list[str] = []
    func = handler.func
    for name in handler.event_types:
        if name != WILDCARD and name not in known_types() and not handler.future:
            source = split(name)[0]
            known = ", ".join(sorted(t for t in known_types() if split(t)[0] == source))
            problems.append(
                f"unknown event type {name!r} (known: {known}); fix the name, use {WILDCARD!r} for every "
                f"event, or @on({name!r}, future=True) for a type Sphere does not send yet"
            )
    wrong_signature = _takes_ctx_and_event(func)
    if wrong_signature:
        problems.append(wrong_signature)
    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
        problems.append("it is a generator (it has `yield`), so its body would never run; remove the yield")
    prefix = f"{location(func)}: handler {handler.name}"
    return [f"{prefix}: {problem}" for problem in problems]


def check_registry(registry: Registry) -> list[str]:
    """Every problem of every handler in `registry`, in registration order."""
    return [problem for handler in registry for problem in check_handler(handler)]
