"""Sphere Relay's workers: every stored event reaches your handlers at least once.

Write handlers in ``worker/tasks.py`` (or the module named by ``RELAY_TASKS``)::

    from relay.events import VoteAdd
    from worker import Context, on

    @on("VOTE_ADD")
    async def reward_voter(ctx: Context, event: VoteAdd) -> None:
        ...

and run ``arq worker.main.WorkerSettings``.

At least once, not exactly once
-------------------------------
An event is acknowledged in the stream only together with the creation of its handler jobs, and a
job ends only in success or in a dead letter. So no event is lost, but a handler may run more than
once for the same event: when its worker dies mid-run (the run is repeated once arq's in-progress
mark expires, after the largest handler ``timeout`` + 2 s + 10 s), or when it succeeded but the
success was not recorded. Make handlers idempotent with ``ctx["event_id"]``, which is the same on
every attempt and on a replay, for example::

    @on("VOTE_ADD")
    async def reward_voter(ctx: Context, event: VoteAdd) -> None:
        done = f"myapp:rewarded:{ctx['event_id']}"
        if await ctx["redis"].exists(done):
            return  # an earlier run got this far
        await give_reward(event.user_id)
        await ctx["redis"].set(done, 1, ex=8 * 86400)

Best of all, record the event id in the same database transaction as the work itself (a unique
constraint on it), or pass it as the idempotency key of the service you call.
"""

from worker.context import Context
from worker.errors import Permanent
from worker.registry import Handler, Registry, on

__all__ = ["Context", "Handler", "Permanent", "Registry", "on"]
