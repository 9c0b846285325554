"""Real worker processes (``arq worker.main.WorkerSettings``): waiting events, crashes, poison pills, SIGTERM.

These kill and restart processes. Waits are bounded polls on Redis or on a worker's log, never sleeps;
the bounds are generous because a crashed run is retried only after arq's in-progress expiry (the
largest handler timeout + 2 s + 10 s).
"""

from __future__ import annotations

import pytest
import redis

from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM
from tests.support.task_runs import HOOKS, RELEASE, runs
from tests.support.worker_process import WorkerPool
from tests.worker.helpers import dead_letters_sync, review_body, store_sync, unknown_body, until, vote_body
from worker.keys import ARQ_QUEUE

pytestmark = pytest.mark.slow


def test_events_stored_while_no_worker_runs_are_all_handled_when_one_starts(
    client: redis.Redis, workers: WorkerPool
) -> None:
    votes = [store_sync(client, vote_body()) for _ in range(5)]
    reviews = [store_sync(client, review_body()) for _ in range(2)]
    boost = store_sync(client, unknown_body())

    worker = workers.start("tests.support.tasks_record")
    expected = (
        {(v, "reward_voter") for v in votes}
        | {(r, "log_review") for r in reviews}
        | {(e, "audit") for e in [*votes, *reviews, boost]}
    )
    until(lambda: len(runs(client)) >= len(expected), 30, "every (event, handler) ran")
    worker.terminate()
    assert worker.wait_exit() == 0

    done = runs(client)
    assert sorted((r["event_id"], r["handler"]) for r in done) == sorted(expected)  # each exactly once
    assert {r["model"] for r in done if r["handler"] == "audit"} == {"VoteAdd", "ReviewAdd", "Event"}
    assert [mark.decode() for mark in client.lrange(HOOKS, 0, -1)] == [
        f"startup:{worker.pid}",
        f"shutdown:{worker.pid}",
    ]
    assert client.xpending(EVENTS_STREAM, CONSUMER_GROUP)["pending"] == 0
    assert client.zcard(ARQ_QUEUE) == 0


def test_a_handler_killed_with_its_worker_is_finished_by_another(
    client: redis.Redis, workers: WorkerPool
) -> None:
    first = workers.start("tests.support.tasks_stall")
    second = workers.start("tests.support.tasks_stall")
    first.wait_reading(client)
    second.wait_reading(client)
    entry_id = store_sync(client, vote_body())

    [started] = until(lambda: runs(client), 20, "the handler started")
    victim = first if started["pid"] == first.pid else second
    survivor = second if victim is first else first
    victim.kill()

    finished = until(
        lambda: [r for r in runs(client) if r["phase"] == "done"], 60, "the survivor finished the handler"
    )
    assert [(r["event_id"], r["pid"], r["attempt"]) for r in finished] == [(entry_id, survivor.pid, 2)]
    assert dead_letters_sync(client) == []
    until(lambda: client.zcard(ARQ_QUEUE) == 0, 10, "the job left the queue")


def test_a_poison_pill_is_dead_lettered_after_killing_max_attempts_workers(
    client: redis.Redis, workers: WorkerPool
) -> None:
    entry_id = store_sync(client, vote_body())

    for attempt in (1, 2):  # each run kills the process running it
        worker = workers.start("tests.support.tasks_poison")
        until(lambda attempt=attempt: len(runs(client)) == attempt, 40, f"attempt {attempt} ran")
        assert worker.wait_exit(10) == 1

    last = workers.start("tests.support.tasks_poison")
    [letter] = until(lambda: dead_letters_sync(client), 40, "the event was dead-lettered")
    assert (letter.entry_id, letter.handler, letter.error_type, letter.attempts) == (
        entry_id,
        "crash_worker",
        "WorkerDied",
        2,
    )
    assert "never finished" in letter.error
    until(lambda: client.zcard(ARQ_QUEUE) == 0, 10, "the job left the queue")
    assert last.running()  # the third worker never ran the handler
    assert [r["attempt"] for r in runs(client)] == [1, 2]


def test_sigterm_lets_the_running_handler_finish_and_takes_no_more_entries(
    client: redis.Redis, workers: WorkerPool
) -> None:
    worker = workers.start("tests.support.tasks_slow")
    worker.wait_reading(client)
    first = store_sync(client, vote_body())
    until(lambda: runs(client), 20, "the handler started")

    worker.terminate()
    worker.wait_for_log("stopped taking entries")  # the bridge's last line: it reads nothing more
    later = [store_sync(client, vote_body()) for _ in range(3)]
    client.rpush(RELEASE, "go")
    assert worker.wait_exit() == 0

    assert [(r["event_id"], r["phase"]) for r in runs(client)] == [(first, "start"), (first, "done")]
    [group] = client.xinfo_groups(EVENTS_STREAM)
    assert (group["pending"], group["lag"]) == (0, 3)  # the later entries were never taken
    assert client.zcard(ARQ_QUEUE) == 0

    # Nothing was lost: the next worker handles them, and does not run the first one again.
    client.rpush(RELEASE, *["go"] * 3)
    successor = workers.start("tests.support.tasks_slow")
    until(lambda: len(runs(client)) == 8, 30, "the waiting entries were handled")
    successor.kill()
    done = [r["event_id"] for r in runs(client) if r["phase"] == "done"]
    assert sorted(done) == sorted([first, *later])
