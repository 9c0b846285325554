"""`worker.claim`'s pure parts: the order a poll's jobs are tried in, and arq's transactions recognised."""

from __future__ import annotations

from worker.claim import (
    MINE_KEPT,
    STEAL_AFTER_MS,
    WAITING_FORGET_SECONDS,
    Claims,
    claimed_in_progress_ms,
    run_reads_job,
)

NOW = 1_000_000.0


def flat(*jobs: tuple[str, float], listed: int | None = None) -> list[object]:
    """`POLL_SCRIPT`'s reply: how many jobs the range listed (default: these), then id, score, ..."""
    count = len(jobs) if listed is None else listed
    return [count, *(part for job, score in jobs for part in (job.encode(), repr(score).encode()))]


def test_a_worker_tries_its_own_jobs_first_each_part_from_a_random_place() -> None:
    claims = Claims()
    claims.queued(["m1", "m2", "m3"])
    polled = flat(("o1", 1.0), ("m1", 2.0), ("o2", 3.0), ("m2", 4.0), ("m3", 5.0))

    order = claims.polled(polled, NOW, turn=lambda n: n - 1)  # each part starts at its last job

    assert order == [b"m3", b"m1", b"m2", b"o2", b"o1"]
    assert claims.due == {"o1": 1.0, "m1": 2.0, "o2": 3.0, "m2": 4.0, "m3": 5.0}


def test_another_workers_job_is_tried_only_once_it_has_waited() -> None:
    claims = Claims()
    claims.queued(["mine"])
    fresh, waited = NOW - STEAL_AFTER_MS + 1, NOW - STEAL_AFTER_MS
    polled = flat(("mine", NOW), ("fresh", fresh), ("waited", waited))

    assert claims.polled(polled, NOW, turn=lambda n: 0) == [b"mine", b"waited"]
    assert claims.due["fresh"] == fresh  # listed as due all the same: a claim of it is answered
    assert claims.polled(flat(), NOW, turn=lambda n: 0) == [] and claims.due == {}


def test_the_jobs_a_worker_remembers_as_its_own_are_bounded() -> None:
    claims = Claims()
    claims.queued(str(n) for n in range(MINE_KEPT + 5))
    assert len(claims.mine) == MINE_KEPT
    assert next(iter(claims.mine)) == "5"  # the oldest were forgotten


def test_the_jobs_its_bridge_queued_wait_for_the_worker_until_it_tries_them() -> None:
    claims, told = Claims(), []
    claims.on_fewer_waiting = lambda: told.append(len(claims.waiting))
    claims.queued(["a", "b", "c"], now=10.0)
    assert claims.waiting_count(now=10.0) == 3 and list(claims.mine) == ["a", "b", "c"]

    claims.tried("b")  # claimed or lost to another worker: either way, no longer waiting for this one
    claims.tried("b")
    claims.tried("someone-elses")
    assert told == [2] and claims.waiting_count(now=10.0) == 2

    claims.claimed("x")  # a claim this worker won: its own (retries come back here), never waiting
    assert "x" in claims.mine and "x" not in claims.waiting


def test_a_poll_that_saw_the_whole_queue_drops_the_waiting_jobs_it_did_not_list() -> None:
    claims, told = Claims(), []
    claims.on_fewer_waiting = lambda: told.append(sorted(claims.waiting))
    claims.queued(["listed", "taken-elsewhere"], now=10.0)
    claims.queued(["queued-after-the-poll-was-sent"], now=12.0)

    # Cut short by arq's limit: the jobs not listed may lie past it, so nothing is dropped.
    claims.polled(flat(("listed", NOW), listed=2), NOW, turn=lambda n: 0, limit=2, sent=11.0)
    assert len(claims.waiting) == 3 and told == []

    claims.polled(flat(("listed", NOW), listed=1), NOW, turn=lambda n: 0, limit=2, sent=11.0)
    assert sorted(claims.waiting) == ["listed", "queued-after-the-poll-was-sent"]
    assert told == [["listed", "queued-after-the-poll-was-sent"]]


def test_a_job_waits_for_its_worker_no_longer_than_the_forget_time() -> None:
    claims = Claims()
    claims.queued(["old"], now=10.0)
    claims.queued(["new"], now=10.0 + WAITING_FORGET_SECONDS)
    assert claims.waiting_count(now=10.0 + WAITING_FORGET_SECONDS) == 2
    assert claims.waiting_count(now=10.0 + WAITING_FORGET_SECONDS + 0.1) == 1
    assert list(claims.waiting) == ["new"]


def test_only_arqs_own_transactions_are_recognised() -> None:
    key = "arq:in-progress:j"
    assert claimed_in_progress_ms([(("PSETEX", key, 42_000, b"1"), {})], key) == 42_000
    assert claimed_in_progress_ms([(("PSETEX", "other", 42_000, b"1"), {})], key) is None
    assert claimed_in_progress_ms([(("SET", key, b"1"), {}), (("PSETEX", key, 1, b"1"), {})], key) is None

    run = [
        (("GET", "arq:job:j"), {}),
        (("INCRBY", "arq:retry:j", 1), {}),
        (("EXPIRE", "arq:retry:j", 88400), {}),
    ]
    assert run_reads_job(run) == "j"
    assert run_reads_job(run[:2]) is None
    assert run_reads_job([run[0], (("INCRBY", "arq:retry:j", 2), {}), run[2]]) is None
    assert run_reads_job([run[0], (("INCRBY", "arq:retry:other", 1), {}), run[2]]) is None
