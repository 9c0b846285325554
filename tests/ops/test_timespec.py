"""Durations, points in time and how times are printed (`relay.ops.timespec`)."""

from __future__ import annotations

import pytest

from relay.ops.timespec import ago, bound_ms, iso, parse_duration, parse_time, span

NOW = 1718000000000  # 2024-06-10T06:13:20Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1h30m", 5400),
        ("0.5s", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "7d garbage", "-1h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_times_ago_iso_now_and_entry_ids() -> None:
    assert parse_time("2h", NOW) == str(NOW - 7_200_000)
    assert parse_time("now", NOW) == str(NOW)
    assert parse_time("1718000000000-7", NOW) == "1718000000000-7"
    assert parse_time("2024-06-10T06:13:20", NOW) == str(NOW)  # naive means UTC
    assert parse_time("2024-06-10T08:13:20+02:00", NOW) == str(NOW)
    assert parse_time("2024-06-10T06:13:20Z", NOW) == str(NOW)
    assert bound_ms(parse_time("1718000000000-7", NOW)) == NOW
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday", NOW)


def test_times_print_in_utc_and_spans_stay_short() -> None:
    assert iso(NOW + 5) == "2024-06-10T06:13:20.005Z"
    assert [span(ms) for ms in (850, 2100, 185_000, 7_380_000, 273_600_000)] == [
        "850ms",
        "2.1s",
        "3m05s",
        "2h03m",
        "3d04h",
    ]
    assert ago(NOW - 2100, NOW) == "2.1s ago"
