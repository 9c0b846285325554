"""Replays and ``ctx["once"]``: by default a replay skips the effects already done; --rerun-effects redoes them."""

from __future__ import annotations

import pytest
import redis

from relay.core.events import VoteAdd
from relay.core.settings import Settings
from tests.cli.cli_support import cli_env, handle_all, invoke, run_jobs, with_redis
from tests.worker.helpers import dead_letters_sync, store, vote_body
from worker import Context, Registry

pytestmark = pytest.mark.usefixtures(cli_env.__name__)


class Granter:
    """Grants a role under ctx["once"], then fails (a later step is broken) until fixed."""

    def __init__(self) -> None:
        self.fixed = False
        self.granted: list[str] = []
        self.registry = Registry()

        @self.registry.on(VoteAdd, max_attempts=1)
        async def grant(ctx: Context, event: VoteAdd) -> None:
            async with ctx["once"]("grant-role") as first:
                if first:
                    self.granted.append(ctx["event_id"])
            if not self.fixed:
                raise RuntimeError("the thank-you step is broken")


def dead_letter_ids(client: redis.Redis, settings: Settings, granter: Granter, count: int) -> list[str]:
    ids = [with_redis(settings.redis_url, lambda r: store(r, vote_body())) for _ in range(count)]
    handle_all(settings, granter.registry)
    assert sorted(granter.granted) == sorted(ids)
    return [letter.id for letter in dead_letters_sync(client)]


def test_dlq_replay_keeps_done_effects_unless_told(settings: Settings, client: redis.Redis) -> None:
    granter = Granter()
    kept, rerun = dead_letter_ids(client, settings, granter, 2)
    granter.fixed, granter.granted = True, []

    assert invoke(["dlq", "replay", kept], registry=granter.registry).exit_code == 0
    run_jobs(settings, granter.registry)
    assert granter.granted == []  # the role was granted on the first run: not again

    result = invoke(["dlq", "replay", "--rerun-effects", rerun], registry=granter.registry)
    assert result.exit_code == 0, result.output
    run_jobs(settings, granter.registry)
    assert len(granter.granted) == 1
    assert dead_letters_sync(client) == []


def test_replay_of_a_range_keeps_done_effects_unless_told(settings: Settings, client: redis.Redis) -> None:
    granter = Granter()
    granter.fixed = True
    with_redis(settings.redis_url, lambda r: store(r, vote_body()))
    handle_all(settings, granter.registry)
    assert len(granter.granted) == 1

    assert invoke(["replay", "--since", "1h", "--rate", "0"], registry=granter.registry).exit_code == 0
    run_jobs(settings, granter.registry)
    assert len(granter.granted) == 1

    result = invoke(["replay", "--since", "1h", "--rate", "0", "--rerun-effects"], registry=granter.registry)
    assert result.exit_code == 0, result.output
    run_jobs(settings, granter.registry)
    assert len(granter.granted) == 2
