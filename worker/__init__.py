"""Sphere Relay's workers: every stored event reaches your handlers at least once.

Write handlers in ``worker/tasks.py`` (or the module named by ``RELAY_TASKS``) with `on`, and run
``arq worker.main.WorkerSettings``. docs/handlers.md is the guide.
"""

from arq import Retry

from worker.context import Context
from worker.errors import Permanent
from worker.registry import Handler, Registry, on

__all__ = ["Context", "Handler", "Permanent", "Registry", "Retry", "on"]
