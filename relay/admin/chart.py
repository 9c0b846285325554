"""The overview's chart of the last hour as SVG geometry: pure, so the page needs no JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 220
LEFT = 48
"""Room for the y-axis labels."""
BOTTOM = 24
"""Room for the x-axis labels."""
TOP = 10


@dataclass(frozen=True, slots=True)
class Minute:
    """Counts for one minute (`start_ms`, a multiple of 60 000)."""

    start_ms: int
    received: int
    handled: int
    failed: int


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    color: str
    points: str
    """``"x,y x,y ..."`` for an SVG polyline."""
    total: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[float, int]]
    """(y, value) of each horizontal grid line."""
    x_ticks: list[tuple[float, str]]
    """(x, "HH:MM" in UTC) every 10 minutes."""
    plot_left: int
    plot_right: int
    plot_bottom: int


def nice_max(value: int) -> int:
    """The smallest of 1, 2, 5 times a power of ten at or above `value` (at least 4), for the y axis."""
    top = max(value, 4)
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= top:
                return step * scale
        scale *= 10


def tick_step(top: int) -> int:
    """The grid's step for a `nice_max` top: a fifth of it, or a quarter of a top starting with 2, so the
    labels are whole numbers counting up evenly (5 by 1, 10 by 2, 20 by 5, 50 by 10)."""
    leading = top // 10 ** (len(str(top)) - 1)
    return top // 4 if leading == 2 else top // 5


def build(minutes: Sequence[Minute]) -> Chart:
    """Received, handled and failed per minute as three polylines on a shared y axis."""
    right, bottom = WIDTH - 8, HEIGHT - BOTTOM
    top_value = nice_max(max((max(m.received, m.handled, m.failed) for m in minutes), default=0))
    span = max(len(minutes) - 1, 1)

    def x(index: int) -> float:
        return round(LEFT + (right - LEFT) * index / span, 1)

    def y(value: int) -> float:
        return round(bottom - (bottom - TOP) * value / top_value, 1)

    def line(name: str, color: str, values: list[int]) -> Series:
        points = " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))
        return Series(name, color, points, sum(values))

    series = [
        line("received", "#2563eb", [m.received for m in minutes]),
        line("handled", "#16a34a", [m.handled for m in minutes]),
        line("failed", "#dc2626", [m.failed for m in minutes]),
    ]
    y_ticks = [(y(value), value) for value in range(0, top_value + 1, tick_step(top_value))]
    x_ticks = []
    for i, minute in enumerate(minutes):
        if (minute.start_ms // 60_000) % 10 == 0:
            hours, mins = divmod((minute.start_ms // 60_000) % 1440, 60)
            x_ticks.append((x(i), f"{hours:02d}:{mins:02d}"))
    return Chart(WIDTH, HEIGHT, series, y_ticks, x_ticks, LEFT, right, bottom)
