"""What each answer of a destination means (pure)."""

from __future__ import annotations

import email.utils

import pytest

from worker.forward.response import BODY_HEAD_BYTES, judge, retry_after, retry_after_wait

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("status", "header", "action", "delay"),
    [
        (200, None, "delivered", 0.0),
        (204, None, "delivered", 0.0),
        (429, "3", "retry_after", 3.0),
        (503, "120", "retry_after", 120.0),
        (429, None, "retry", 0.0),
        (503, "soon", "retry", 0.0),
        (500, "3", "retry", 0.0),
        (502, None, "retry", 0.0),
        (410, None, "give_up", 0.0),
        (404, "3", "give_up", 0.0),
        (400, None, "give_up", 0.0),
        (301, None, "give_up", 0.0),
    ],
)
def test_each_status_has_its_verdict(status: int, header: str | None, action: str, delay: float) -> None:
    verdict = judge(status, header, b"", now=NOW, cap=1800)
    assert (verdict.action, verdict.delay) == (action, delay)


def test_a_requested_delay_is_capped() -> None:
    assert judge(429, "86400", b"", now=NOW, cap=1800).delay == 1800


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("7", NOW) == 7.0
    assert retry_after(email.utils.formatdate(NOW + 30, usegmt=True), NOW) == pytest.approx(30.0)
    assert retry_after(email.utils.formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    assert retry_after("-1", NOW) is None
    assert retry_after("1.5", NOW) is None
    assert retry_after("tomorrow", NOW) is None
    assert retry_after(None, NOW) is None


def test_a_refusal_keeps_the_status_and_the_start_of_the_body() -> None:
    verdict = judge(410, None, b"gone: " + b"x" * 1000, now=NOW, cap=1800)
    assert verdict.reason.startswith("HTTP 410: gone: x")
    assert len(verdict.reason) <= len("HTTP 410: ") + BODY_HEAD_BYTES
    assert judge(404, None, b"", now=NOW, cap=1800).reason == "HTTP 404 (empty body)"


def test_the_first_requested_delay_is_followed_to_the_second() -> None:
    assert retry_after_wait(3, attempt=1, base=10, cap=1800) == 3
    assert retry_after_wait(90, attempt=2, base=10, cap=1800) == 90
    assert retry_after_wait(86400, attempt=5, base=10, cap=1800) == 1800


def test_a_destination_that_keeps_asking_for_a_second_is_tried_for_over_an_hour() -> None:
    waits = [retry_after_wait(1, attempt=n, base=10, cap=1800) for n in range(1, 12)]  # before attempts 2..12
    assert waits[0] == 1 and waits[1] == 7.5  # the backoff's shortest wait after attempt 1
    assert sum(waits) > 3600
