"""``relay replay --since``: a time range of relay:events run through the handlers again, by the real
worker code in burst mode."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis
from arq.constants import job_key_prefix

from relay.core.events import Event
from relay.core.settings import Settings
from tests.cli.cli_support import cli_env, handle_all, invoke, run_jobs, with_redis
from tests.worker.helpers import review_body, store, vote_body
from worker import Context, Registry
from worker.keys import ARQ_QUEUE
from worker.registry import default_registry

pytestmark = pytest.mark.usefixtures(cli_env.__name__)


class Recorded:
    """Two handlers recording (handler, event id, attempt, job id) for every run."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, int, str]] = []
        self.registry = Registry()

        @self.registry.on("VOTE_ADD")
        async def reward_voter(ctx: Context, event: Event) -> None:
            self.runs.append((ctx["handler"], ctx["event_id"], ctx["attempt"], ctx["job_id"]))

        @self.registry.on("*")
        async def audit(ctx: Context, event: Event) -> None:
            self.runs.append((ctx["handler"], ctx["event_id"], ctx["attempt"], ctx["job_id"]))

    def handled(self) -> list[tuple[str, str]]:
        """(handler, event id) of each run since the last call."""
        runs, self.runs = self.runs, []
        return sorted((handler, event_id) for handler, event_id, _, _ in runs)


def handled_events(settings: Settings, recorded: Recorded, *bodies: bytes) -> list[str]:
    ids = [with_redis(settings.redis_url, lambda r, b=body: store(r, b)) for body in bodies]
    handle_all(settings, recorded.registry)
    recorded.handled()
    return ids


def test_one_handler_reruns_a_range_with_the_original_event_ids(settings: Settings) -> None:
    recorded = Recorded()
    ids = handled_events(settings, recorded, vote_body(), review_body(), vote_body())

    result = invoke(
        ["replay", "--since", "1h", "--handler", "audit", "--rate", "0"], registry=recorded.registry
    )

    assert result.exit_code == 0, result.output
    assert "replaying 3 event(s) from " in result.output
    assert "3 job(s) for audit" in result.output
    assert "enqueued 3 job(s)" in result.output
    run_jobs(settings, recorded.registry)
    assert recorded.runs and all(
        attempt == 1 and ":rerun:" in job_id for _, _, attempt, job_id in recorded.runs
    )
    assert recorded.handled() == sorted(("audit", entry_id) for entry_id in ids)

    votes_only = invoke(
        ["replay", "--since", "1h", "--handler", "reward_voter", "--dry-run"], registry=recorded.registry
    )
    assert "1 event(s) in the range do not go to reward_voter" in votes_only.output
    assert "would replay 2 event(s)" in votes_only.output


def test_every_matching_handler_by_default_and_twice_when_asked_twice(settings: Settings) -> None:
    recorded = Recorded()
    vote, review = handled_events(settings, recorded, vote_body(), review_body())
    expected = sorted([("reward_voter", vote), ("audit", vote), ("audit", review)])

    for _ in range(2):  # each run has job ids of its own: the second is not taken for the first
        result = invoke(["replay", "--since", "1h", "--rate", "0"], registry=recorded.registry)
        assert result.exit_code == 0, result.output
        assert "3 job(s) for audit, reward_voter" in result.output
        run_jobs(settings, recorded.registry)
        assert recorded.handled() == expected


def test_the_range_is_inclusive_by_entry_id(settings: Settings) -> None:
    recorded = Recorded()
    ids = handled_events(settings, recorded, *(vote_body() for _ in range(4)))

    result = invoke(
        ["replay", "--since", ids[1], "--until", ids[2], "--handler", "reward_voter", "--rate", "0"],
        registry=recorded.registry,
    )

    assert result.exit_code == 0, result.output
    run_jobs(settings, recorded.registry)
    assert recorded.handled() == sorted(("reward_voter", entry_id) for entry_id in ids[1:3])


def test_events_not_handled_yet_are_skipped(settings: Settings, client: redis.Redis) -> None:
    recorded = Recorded()
    handled_events(settings, recorded, vote_body())
    with_redis(settings.redis_url, lambda r: store(r, vote_body()))  # no worker has read it yet

    result = invoke(["replay", "--since", "1h", "--rate", "0"], registry=recorded.registry)

    assert result.exit_code == 0, result.output
    assert "skipping 1 event(s) the workers have not handled yet" in result.output
    assert "replaying 1 event(s)" in result.output
    assert client.zcard(ARQ_QUEUE) == 2  # reward_voter and audit for the handled event only


def test_replayed_jobs_wait_in_the_queue_for_the_retention_period(
    settings: Settings, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = Recorded()
    handled_events(settings, recorded, vote_body())
    monkeypatch.setenv("RELAY_RETENTION_SECONDS", "90")

    result = invoke(
        ["replay", "--since", "1h", "--handler", "audit", "--rate", "0"], registry=recorded.registry
    )

    assert result.exit_code == 0, result.output
    [job_id] = client.zrange(ARQ_QUEUE, 0, -1)
    assert 80_000 < client.pttl(job_key_prefix + job_id.decode()) <= 90_000  # as the bridge's jobs do


def test_a_dry_run_enqueues_nothing(settings: Settings, client: redis.Redis) -> None:
    recorded = Recorded()
    handled_events(settings, recorded, vote_body())

    result = invoke(["replay", "--since", "1h", "--dry-run"], registry=recorded.registry)

    assert result.exit_code == 0, result.output
    assert "would replay 1 event(s)" in result.output
    assert client.zcard(ARQ_QUEUE) == 0


def test_an_empty_range(settings: Settings) -> None:
    recorded = Recorded()
    handled_events(settings, recorded, vote_body())

    result = invoke(["replay", "--since", "2001-01-01", "--until", "2001-01-02"], registry=recorded.registry)

    assert result.exit_code == 0
    assert "nothing to replay from 2001-01-01T00:00:00.000Z" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "is not a time"),
        (["--since", "1h", "--until", "2h"], "is after --until"),
        (["--since", "1h", "--handler", "nobody"], "no handler 'nobody'"),
        ([], "Missing option '--since'"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = invoke(["replay", *args], registry=Recorded().registry)

    assert result.exit_code == 2
    assert message in result.output


def test_the_handlers_come_from_relay_tasks(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, client: redis.Redis
) -> None:
    # As tests/worker/test_main.py does: an empty default registry, the tasks module imported afresh.
    monkeypatch.setattr(default_registry, "_handlers", {})
    monkeypatch.delitem(sys.modules, "tests.support.tasks_record", raising=False)
    monkeypatch.setenv("RELAY_TASKS", "tests.support.tasks_record")
    handled_events(settings, Recorded(), vote_body())

    result = invoke(["replay", "--since", "1h", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "2 job(s) for audit, reward_voter" in result.output


def test_a_tasks_module_that_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TASKS", "no_such_tasks_module")
    result = invoke(["replay", "--since", "1h"])

    assert result.exit_code == 2
    assert result.output == "relay: RELAY_TASKS=no_such_tasks_module: no such module\n"


def test_a_tasks_module_with_broken_handlers_is_refused_one_line_each(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(default_registry, "_handlers", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tasks_cli_broken.py").write_text(
        "from worker import on\n\n@on('VOTE_ADDED')\nasync def typo(ctx, event): ...\n\n"
        "@on('VOTE_ADD')\ndef lonely(event): ...\n"
    )
    monkeypatch.setenv("RELAY_TASKS", "tasks_cli_broken")
    result = invoke(["replay", "--since", "1h"])

    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 2 and all(line.startswith("relay: ") for line in lines)
    assert "tasks_cli_broken.py:3: handler typo: unknown event type 'VOTE_ADDED'" in lines[0]
    assert "tasks_cli_broken.py:6: handler lonely: its signature (event) cannot take (ctx, event)" in lines[1]
    monkeypatch.delitem(sys.modules, "tasks_cli_broken")
