"""What a handler may raise to steer the worker, and what the dead letters name.

    Exception
    ├── Permanent       -- raised by a handler: dead-letter the event now, no more attempts
    │   └── NotAwaited  -- raised by the worker: the handler returned an awaitable it never awaited
    └── arq.Retry       -- raised by a handler: try again after ``defer`` seconds (an attempt)

Any other exception, and a timeout, is an ordinary failed attempt: the job is retried with backoff
until the handler's ``max_attempts``, then dead-lettered. Besides the handler's own exception types, a
dead letter's ``error_type`` may be one the worker records itself:

- ``TimeoutError``: the attempt ran longer than the handler's ``timeout``.
- ``InvalidEvent`` / ``InvalidBody``: the stored body no longer parses (retrying cannot help).
- ``WorkerDied``: an attempt never finished, because the process running it died (kill -9, out of
  memory, ``os._exit``) or was stopped mid-run, and no attempt is left to try again.
- ``UnknownHandler``: every worker that took the job lacked the handler it names (a handler renamed
  or removed while its jobs waited, or one deployed to no worker yet); replay it once it exists.
"""

from __future__ import annotations

WORKER_DIED = "WorkerDied"
UNKNOWN_HANDLER = "UnknownHandler"


class Permanent(Exception):
    """Raise in a handler when retrying cannot help: the event goes to ``relay:dead`` at once.

    The message is kept in the dead letter, so say what was wrong::

        raise Permanent(f"guild {event.guild_id} is not configured")
    """


class NotAwaited(Permanent):
    """The handler returned a coroutine (or another awaitable) instead of awaiting it: a plain ``def``
    calling an async function, usually. Retrying cannot help, so the event is dead-lettered at once."""
