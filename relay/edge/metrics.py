"""The edge's Prometheus metrics, and the counting core the workers share.

Exported by the edge (``GET /metrics``, see ``RELAY_METRICS``):

- ``relay_webhook_requests_total{outcome}``: every ``POST /webhook``, by how it ended: the ``error``
  or ``status`` code of its answer (``queued``, ``duplicate``, ``invalid_signature``, ``invalid_body``,
  ``invalid_event``, ``body_too_large``, ``body_timeout``, ``redis_unavailable``, ``shutting_down``, ``internal_error``),
  ``client_gone`` when the client left before its body was complete, and ``method_not_allowed``;
- ``relay_webhook_duration_seconds{outcome}``: how long each took, from its first byte to its answer;
- ``relay_webhook_source_requests_total{source,outcome}``: the same requests by sender (``sphere``,
  ``topgg``, ``standard``); Sphere's are what the other senders' routes did not count, worked out
  when scraped so that Sphere's route counts nothing more than before;
- ``relay_redis_errors_total{kind}``: failed ingest round trips (``timeout``, ``connection``,
  ``other``), single writes Redis refused (``refused``: OOM, READONLY, ...), and batches fewer than
  ``RELAY_MIN_REPLICAS`` replicas confirmed (``replicas``);
- prometheus-client's ``process_*`` and ``python_*`` metrics.

Why not prometheus-client's own `Counter` and `Histogram` on the hot path: each update takes a
lock, which cost the edge about four times what `Timings` does (bench/RESULTS.md, "Figures behind
the code"). `Timings` keeps the same numbers as plain numbers in lists and hands them to prometheus-client only when scraped. No lock is needed: the event loop's
thread is the only one that writes them, and the scrape is served on that loop too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, Metric

from relay.core.metrics import Timings
from relay.edge.errors import BadSignature, BodyTimeout, BodyTooLarge, RedisUnavailable, ShuttingDown

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
    ShuttingDown.code,
    "internal_error",
    "client_gone",
    "method_not_allowed",
    "forbidden_source",  # relay.app.FORBIDDEN_SOURCE: a 403 from RELAY_ALLOWED_SOURCES
)
"""Every outcome the edge reports, so that each series exists (at 0) before its first request."""

REDIS_ERROR_KINDS = ("timeout", "connection", "refused", "replicas", "other")


class EdgeMetrics:
    """The edge's numbers, registered in a `CollectorRegistry` of its own (one per app, so tests
    that build several apps never collide in prometheus-client's global registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhook = Timings(["outcome"], EDGE_BUCKETS)
        self._rows = {outcome: self.webhook.row(outcome) for outcome in OUTCOMES}
        self._bounds = self.webhook.buckets
        self.redis_errors = dict.fromkeys(REDIS_ERROR_KINDS, 0)
        self.senders = Timings(["source", "outcome"], EDGE_BUCKETS)
        """The requests of the routes of senders other than Sphere (`relay.edge.senders`)."""
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

    def observer(self, source: str) -> Callable[[str, float], None]:
        """`observe` for the route of `source` (not Sphere): counted in all, and by sender."""
        rows = {outcome: self.senders.row(source, outcome) for outcome in OUTCOMES}
        bounds = self._bounds

        def observe(outcome: str, seconds: float) -> None:
            self.observe(outcome, seconds)
            row = rows.get(outcome)
            if row is None:
                row = rows[outcome] = self.senders.row(source, outcome)
            row[bisect_left(bounds, seconds)] += 1
            row[-1] += seconds

        return observe

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
        by_source = CounterMetricFamily(
            "relay_webhook_source_requests",
            "Webhook requests by sender and outcome (sphere: those no other sender's route counted).",
            labels=["source", "outcome"],
        )
        others: dict[str, int] = {}
        for source, outcome in self.senders.keys():
            count = self.senders.count(source, outcome)
            by_source.add_metric([source, outcome], count)
            others[outcome] = others.get(outcome, 0) + count
        for outcome in self._rows:
            by_source.add_metric(["sphere", outcome], self.webhook.count(outcome) - others.get(outcome, 0))
        yield by_source
        errors = CounterMetricFamily(
            "relay_redis_errors", "Failed ingest round trips and refused writes, by kind.", labels=["kind"]
        )
        for kind, count in self.redis_errors.items():
            errors.add_metric([kind], count)
        yield errors
