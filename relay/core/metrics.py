"""The counting core the edge and the workers share: `Timings`, counts and duration histograms kept
as plain numbers and handed to prometheus-client only when scraped (no lock per update on the hot
path; the figures are in bench/RESULTS.md)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

Row = list[float]
"""One label combination: a count per bucket (the last for +Inf, not cumulative), then the sum."""


class Timings:
    """Counts and a duration histogram for each combination of label values, in plain numbers.

    Writers get a `row` once (at start-up, for known labels) and `observe` it on every event; the
    scrape turns the rows into a counter family and a histogram family.
    """

    def __init__(self, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.labels = tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._rows: dict[tuple[str, ...], Row] = {}

    def row(self, *values: str) -> Row:
        """The row of these label values, created at zero on first use."""
        row = self._rows.get(values)
        if row is None:
            row = self._rows[values] = [0.0] * (len(self.buckets) + 2)
        return row

    def observe(self, row: Row, seconds: float) -> None:
        """Count one event of `row` that took `seconds`."""
        # bisect_left finds the first bound >= seconds: Prometheus buckets are "less or equal".
        row[bisect_left(self.buckets, seconds)] += 1
        row[-1] += seconds

    def count(self, *values: str) -> int:
        """How many events `row(*values)` has counted (0 for labels never seen)."""
        row = self._rows.get(values)
        return int(sum(row[:-1])) if row is not None else 0

    def keys(self) -> list[tuple[str, ...]]:
        """The label values of every row so far."""
        return list(self._rows)

    def counter_family(self, name: str, documentation: str) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=self.labels)
        for values, row in self._rows.items():
            family.add_metric(values, sum(row[:-1]))
        return family

    def histogram_family(self, name: str, documentation: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=self.labels)
        bounds = [*(_bound(b) for b in self.buckets), "+Inf"]
        for values, row in self._rows.items():
            cumulative, total = [], 0.0
            for bound, count in zip(bounds, row, strict=False):
                total += count
                cumulative.append((bound, total))
            family.add_metric(values, cumulative, row[-1])
        return family


def _bound(value: float) -> str:
    return repr(float(value))  # "0.005", "1.0": the form every Prometheus client writes
