"""The edge's Prometheus metrics, and the counting core the workers share.

Exported by the edge (``GET /metrics``, see ``RELAY_METRICS``):

- ``relay_webhook_requests_total{outcome}``: every ``POST /webhook``, by how it ended: the ``error``
  or ``status`` code of its answer (``queued``, ``duplicate``, ``invalid_signature``, ``invalid_body``,
  ``invalid_event``, ``body_too_large``, ``body_timeout``, ``redis_unavailable``, ``internal_error``),
  ``client_gone`` when the client left before its body was complete, and ``method_not_allowed``;
- ``relay_webhook_duration_seconds{outcome}``: how long each took, from its first byte to its answer;
- ``relay_redis_errors_total{kind}``: failed ingest round trips (``timeout``, ``connection``,
  ``other``), and single writes Redis refused (``refused``: OOM, READONLY, ...);
- prometheus-client's ``process_*`` and ``python_*`` metrics.

Why not prometheus-client's own `Counter` and `Histogram` on the hot path: each update takes a
lock, and one counter increment plus one histogram observation added 6.2 µs of CPU per request to
the endpoint on the benchmark machine (4.6 µs alone), a tenth of the edge's whole budget. `Timings`
keeps the same numbers as plain numbers in lists (1.4 µs per request measured the same way, 0.6 µs
alone) and hands them to prometheus-client only when scraped. No lock is needed: the event loop's
thread is the only one that writes them, and the scrape is served on that loop too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from relay.errors import BadSignature, BodyTimeout, BodyTooLarge, RedisUnavailable

EDGE_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Seconds. Dense below 25 ms, where a healthy edge answers (its p99 target is 10 ms); coarse above,
up to the Redis timeout (2 s) and the body timeout (10 s), where only trouble lands."""

OUTCOMES = (
    "queued",
    "duplicate",
    BadSignature.code,
    "invalid_body",
    "invalid_event",
    BodyTooLarge.code,
    BodyTimeout.code,
    RedisUnavailable.code,
    "internal_error",
    "client_gone",
    "method_not_allowed",
    "forbidden_source",  # relay.app.FORBIDDEN_SOURCE: a 403 from RELAY_ALLOWED_SOURCES
)
"""Every outcome the edge reports, so that each series exists (at 0) before its first request."""

REDIS_ERROR_KINDS = ("timeout", "connection", "refused", "other")

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


class EdgeMetrics:
    """The edge's numbers, registered in a `CollectorRegistry` of its own (one per app, so tests
    that build several apps never collide in prometheus-client's global registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhook = Timings(["outcome"], EDGE_BUCKETS)
        self._rows = {outcome: self.webhook.row(outcome) for outcome in OUTCOMES}
        self._bounds = self.webhook.buckets
        self.redis_errors = dict.fromkeys(REDIS_ERROR_KINDS, 0)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe(self, outcome: str, seconds: float) -> None:
        """Count one webhook request that ended in `outcome` after `seconds`. The hot path."""
        row = self._rows.get(outcome)
        if row is None:  # an outcome added to the edge but not to OUTCOMES
            row = self._rows[outcome] = self.webhook.row(outcome)
        row[bisect_left(self._bounds, seconds)] += 1
        row[-1] += seconds

    def redis_error(self, kind: str) -> None:
        """Count one failed Redis round trip (or refused write) of `kind`."""
        self.redis_errors[kind] = self.redis_errors.get(kind, 0) + 1

    def requests(self, outcome: str) -> int:
        """Requests counted so far for `outcome`."""
        return self.webhook.count(outcome)

    def collect(self) -> Iterable[Metric]:
        yield self.webhook.counter_family("relay_webhook_requests", "POST /webhook requests by outcome.")
        yield self.webhook.histogram_family(
            "relay_webhook_duration_seconds", "Time from a webhook request's arrival to its answer."
        )
        errors = CounterMetricFamily(
            "relay_redis_errors", "Failed ingest round trips and refused writes, by kind.", labels=["kind"]
        )
        for kind, count in self.redis_errors.items():
            errors.add_metric([kind], count)
        yield errors
