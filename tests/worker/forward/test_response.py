"""What each answer of a destination means (pure)."""

from __future__ import annotations

import email.utils

import pytest

from worker.forward.response import BODY_HEAD_BYTES, judge, retry_after

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
