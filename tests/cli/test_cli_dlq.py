"""``relay dlq`` against a real Redis: dead letters made by the real worker code (burst mode),
listed, shown, replayed after the handler is fixed, and purged."""

from __future__ import annotations

import json

import pytest
import redis

from relay.core.events import VoteAdd
from relay.core.keys import DEAD_STREAM
from relay.core.settings import Settings
from tests.cli.cli_support import cli_env, handle_all, invoke, run_jobs, with_redis
from tests.worker.helpers import dead_letters_sync, review_body, store, vote_body
from worker import Context, Registry
from worker.keys import ARQ_QUEUE

pytestmark = pytest.mark.usefixtures(cli_env.__name__)


class Broken:
    """Handlers that fail until fixed, recording every run's (handler, event id, attempt)."""

    def __init__(self) -> None:
        self.fixed = False
        self.runs: list[tuple[str, str, int]] = []
        self.registry = Registry()

        @self.registry.on("VOTE_ADD", max_attempts=2, backoff=0)
        async def reward_voter(ctx: Context, event: VoteAdd) -> None:
            self._run(ctx)

        @self.registry.on("*", max_attempts=1)
        async def audit(ctx: Context, event: object) -> None:
            self._run(ctx)

    def _run(self, ctx: Context) -> None:
        self.runs.append((ctx["handler"], ctx["event_id"], ctx["attempt"]))
        if not self.fixed:
            raise RuntimeError("role id not configured")


def fail(settings: Settings, broken: Broken, *bodies: bytes) -> list[str]:
    """Store `bodies` as the edge does and let the workers fail on them; returns the entry ids."""
    ids = [with_redis(settings.redis_url, lambda r, b=body: store(r, b)) for body in bodies]
    handle_all(settings, broken.registry)
    return ids


def test_ls_lists_filters_and_prints_json(settings: Settings, client: redis.Redis) -> None:
    broken = Broken()
    vote_id, review_id = fail(settings, broken, vote_body(), review_body())

    result = invoke(["dlq", "ls"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split() == [
        "ID",
        "EVENT",
        "TYPE",
        "HANDLER",
        "TRIES",
        "FAILED",
        "ERROR",
    ]
    assert "RuntimeError: role id not configured" in result.output
    assert "3 dead letter(s)" in result.output

    listed = json.loads(invoke(["dlq", "ls", "--json"]).output)
    assert {(d["entry_id"], d["handler"], d["attempts"]) for d in listed} == {
        (vote_id, "reward_voter", 2),
        (vote_id, "audit", 1),
        (review_id, "audit", 1),
    }
    assert all("traceback" not in d for d in listed)

    only = json.loads(invoke(["dlq", "ls", "--json", "--handler", "audit", "--type", "REVIEW_ADD"]).output)
    assert [(d["entry_id"], d["handler"]) for d in only] == [(review_id, "audit")]
    newest = json.loads(invoke(["dlq", "ls", "--json", "--limit", "1"]).output)
    assert [d["id"] for d in newest] == [listed[-1]["id"]]
    assert invoke(["dlq", "ls", "--handler", "nobody"]).output == "no dead letters match\n"


def test_show_prints_the_whole_dead_letter(settings: Settings, client: redis.Redis) -> None:
    broken = Broken()
    fail(settings, broken, vote_body(user_id="258317078560243712"))
    letter = next(d for d in dead_letters_sync(client) if d.handler == "reward_voter")

    result = invoke(["dlq", "show", letter.id])
    assert result.exit_code == 0, result.output
    assert f"event        {letter.entry_id} (VOTE_ADD" in result.output
    assert '"user_id": "258317078560243712"' in result.output  # the body, pretty-printed
    assert "Traceback (most recent call last)" in result.output
    assert "RuntimeError: role id not configured" in result.output

    shown = json.loads(invoke(["dlq", "show", letter.id, "--json"]).output)
    assert shown["traceback"] == letter.traceback and shown["entry_id"] == letter.entry_id


def test_show_a_missing_or_malformed_id() -> None:
    missing = invoke(["dlq", "show", "1-0"])
    assert (missing.exit_code, missing.output) == (1, "relay: no dead letter 1-0 in relay:dead\n")
    assert invoke(["dlq", "show", "nonsense"]).exit_code == 2


def test_replay_after_the_fix_runs_once_with_the_original_event_id(
    settings: Settings, client: redis.Redis
) -> None:
    broken = Broken()
    [entry_id] = fail(settings, broken, vote_body())
    letter = next(d for d in dead_letters_sync(client) if d.handler == "reward_voter")
    broken.fixed = True
    broken.runs.clear()

    result = invoke(["dlq", "replay", letter.id, "--rate", "0"], registry=broken.registry)
    assert result.exit_code == 0, result.output
    assert f"replayed {letter.id}: reward_voter for event {entry_id}" in result.output
    assert [d.handler for d in dead_letters_sync(client)] == ["audit"]  # deleted with the enqueue
    run_jobs(settings, broken.registry)

    assert broken.runs == [("reward_voter", entry_id, 1)]  # the audit dead letter was not replayed
    assert client.zcard(ARQ_QUEUE) == 0


def test_replay_all_of_one_handler_with_many(settings: Settings, client: redis.Redis) -> None:
    broken = Broken()
    ids = fail(settings, broken, *(vote_body() for _ in range(12)))
    broken.fixed = True
    broken.runs.clear()

    result = invoke(["dlq", "replay", "--all", "--handler", "audit", "--rate", "0"], registry=broken.registry)
    assert result.exit_code == 0, result.output
    assert "12 dead letter(s) replayed" in result.output
    run_jobs(settings, broken.registry)

    assert sorted(broken.runs) == sorted(("audit", entry_id, 1) for entry_id in ids)
    assert {d.handler for d in dead_letters_sync(client)} == {"reward_voter"}


def test_replay_refuses_a_handler_the_workers_no_longer_have(settings: Settings, client: redis.Redis) -> None:
    broken = Broken()
    fail(settings, broken, vote_body())
    renamed = Registry()

    @renamed.on("VOTE_ADD")
    async def reward_voter_v2(ctx: Context, event: VoteAdd) -> None: ...

    letters = dead_letters_sync(client)
    result = invoke(["dlq", "replay", *(d.id for d in letters), "--rate", "0"], registry=renamed)

    assert result.exit_code == 1
    assert "handler reward_voter is not in RELAY_TASKS" in result.output
    assert dead_letters_sync(client) == letters  # nothing deleted
    assert client.zcard(ARQ_QUEUE) == 0
    assert invoke(["dlq", "replay", "--all", "--handler", "audit"], registry=renamed).exit_code == 2


def test_replay_reports_missing_ids_and_replays_the_rest(settings: Settings, client: redis.Redis) -> None:
    broken = Broken()
    fail(settings, broken, vote_body())
    letter = next(d for d in dead_letters_sync(client) if d.handler == "audit")

    result = invoke(["dlq", "replay", letter.id, "1-0", "--rate", "0"], registry=broken.registry)

    assert result.exit_code == 1
    assert "1 dead letter(s) replayed" in result.output
    assert "relay: no dead letter 1-0" in result.output


@pytest.mark.parametrize(
    "args",
    [["dlq", "replay"], ["dlq", "replay", "1-0", "--all"], ["dlq", "replay", "1-0", "--handler", "audit"]],
)
def test_replay_usage_errors(args: list[str]) -> None:
    assert invoke(args, registry=Broken().registry).exit_code == 2


def _old_letter(client: redis.Redis) -> str:
    """A dead letter as if written in 2001 (entry ids are the time a letter was written; a stream
    only takes ids above its last, so this comes first)."""
    fields = {
        "entry_id": "999999999999-0",
        "type": "VOTE_ADD",
        "body": vote_body(),
        "handler": "reward_voter",
    }
    return client.xadd(DEAD_STREAM, fields, id="1000000000000-0").decode()


def test_purge_asks_first_and_deletes_only_older_letters(settings: Settings, client: redis.Redis) -> None:
    old_id = _old_letter(client)
    broken = Broken()
    fail(settings, broken, vote_body())
    fresh = {d.id for d in dead_letters_sync(client)} - {old_id}

    assert (
        invoke(["dlq", "purge", "--older-than", "100000d"]).output == "no dead letters older than 100000d\n"
    )

    declined = invoke(["dlq", "purge", "--older-than", "7d"], input="n\n")
    assert declined.exit_code == 1
    assert "Delete 1 dead letter(s) written before" in declined.output
    assert "nothing deleted" in declined.output
    assert old_id in {d.id for d in dead_letters_sync(client)}

    no_answer = invoke(["dlq", "purge", "--older-than", "7d"], input="")
    assert no_answer.exit_code == 1

    confirmed = invoke(["dlq", "purge", "--older-than", "7d"], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "deleted 1 dead letter(s) older than 7d" in confirmed.output
    assert {d.id for d in dead_letters_sync(client)} == fresh


def test_purge_with_yes_does_not_ask(settings: Settings, client: redis.Redis) -> None:
    broken = Broken()
    fail(settings, broken, vote_body())

    result = invoke(["dlq", "purge", "--older-than", "0s", "--yes"])

    assert result.exit_code == 0, result.output
    assert "Delete" not in result.output
    assert client.xlen(DEAD_STREAM) == 0


def test_purge_needs_a_duration() -> None:
    assert invoke(["dlq", "purge"]).exit_code == 2
    bad = invoke(["dlq", "purge", "--older-than", "a week"])
    assert bad.exit_code == 2 and "not a duration" in bad.output
