"""relay.admin.chart: the last hour as polylines, without a browser."""

from __future__ import annotations

from itertools import pairwise

from relay.admin.chart import HEIGHT, Minute, build, nice_max


def _labels(busiest: int) -> list[int]:
    minutes = [Minute(0, received=busiest, handled=0, failed=0), Minute(60_000, 0, 0, 0)]
    return [value for _, value in build(minutes).y_ticks]


def test_nice_max_rounds_up_to_1_2_5() -> None:
    assert [nice_max(v) for v in (0, 3, 5, 6, 11, 20, 21, 499, 501)] == [5, 5, 5, 10, 20, 20, 50, 500, 1000]


def test_lines_rise_with_the_counts_and_share_one_axis() -> None:
    minutes = [Minute(i * 60_000, received=i, handled=i // 2, failed=0) for i in range(60)]
    drawn = build(minutes)
    received, handled, failed = drawn.series
    assert (received.total, handled.total, failed.total) == (
        sum(range(60)),
        sum(i // 2 for i in range(60)),
        0,
    )
    ys = [float(point.split(",")[1]) for point in received.points.split()]
    assert ys == sorted(ys, reverse=True), "more events draw higher (smaller y)"
    assert len(ys) == 60
    assert drawn.y_ticks[-1][1] == 100 and drawn.y_ticks[0][1] == 0
    assert all(float(p.split(",")[1]) == HEIGHT - 24 for p in failed.points.split())


def test_x_labels_every_ten_minutes_in_utc() -> None:
    minutes = [Minute((1000 + i) * 60_000, 0, 0, 0) for i in range(60)]  # minute 1000 is 16:40 UTC
    labels = [label for _, label in build(minutes).x_ticks]
    assert labels == ["16:40", "16:50", "17:00", "17:10", "17:20", "17:30"]


def test_y_labels_count_up_evenly_without_skipping_a_number() -> None:
    assert _labels(3) == [0, 1, 2, 3, 4, 5]  # was 0, 1, 2, 3, 5 (a quarter of 5, rounded down)
    assert _labels(7) == [0, 2, 4, 6, 8, 10]
    assert _labels(15) == [0, 5, 10, 15, 20]
    assert _labels(42) == [0, 10, 20, 30, 40, 50]
    for busiest in (0, 1, 4, 9, 19, 99, 101, 499, 999, 1999, 12_345):
        labels = _labels(busiest)
        steps = {b - a for a, b in pairwise(labels)}
        assert labels[0] == 0 and labels[-1] == nice_max(busiest) and len(steps) == 1, labels
        (step,) = steps
        assert str(step).strip("0") in {"1", "2", "5"}, f"{busiest}: a step of {step}"


def test_grid_lines_sit_where_their_values_are_drawn() -> None:
    drawn = build([Minute(0, received=5, handled=0, failed=0), Minute(60_000, 0, 0, 0)])
    bottom = HEIGHT - 24
    received_top = float(drawn.series[0].points.split()[0].split(",")[1])
    assert drawn.y_ticks[0][0] == bottom and drawn.y_ticks[-1] == (received_top, 5)
