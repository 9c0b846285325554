"""`worker.claim`'s pure parts: the order a poll's jobs are tried in, and arq's transactions recognised."""

from __future__ import annotations

from worker.claim import MINE_KEPT, STEAL_AFTER_MS, Claims, claimed_in_progress_ms, run_reads_job

NOW = 1_000_000.0


def flat(*jobs: tuple[str, float]) -> list[bytes]:
    """`POLL_SCRIPT`'s reply: id, score, id, score, ..."""
    return [part for job, score in jobs for part in (job.encode(), repr(score).encode())]


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
    assert claims.polled([], NOW, turn=lambda n: 0) == [] and claims.due == {}


def test_the_jobs_a_worker_remembers_as_its_own_are_bounded() -> None:
    claims = Claims()
    claims.queued(str(n) for n in range(MINE_KEPT + 5))
    assert len(claims.mine) == MINE_KEPT
    assert next(iter(claims.mine)) == "5"  # the oldest were forgotten


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
