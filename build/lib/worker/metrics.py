"""The worker's Prometheus metrics, served on a port of its own (``RELAY_WORKER_METRICS``).

Handler runs (counted by this process):

- ``relay_handler_runs_total{handler,outcome}``: every run of a handler job, by what came of it:
  ``ok``; ``retry`` (it failed and runs again after a backoff, or Redis failed the bookkeeping);
  ``dead`` (a dead letter was written); ``skipped`` (this worker lacks the handler, the job is
  deferred for another); ``error`` (the wrapper itself raised: a bug, or arq cancelled the job);
- ``relay_handler_duration_seconds{handler,outcome}``: how long each run took, the handler and the
  relay's bookkeeping around it;
- ``relay_dead_letters_total{handler,reason}``: dead letters written, by why: ``exhausted`` (every
  attempt failed), ``permanent`` (the handler raised `Permanent`), ``invalid_event`` (the stored
  body no longer parses), ``worker_died``, ``unknown_handler``, and ``malformed`` (with an empty
  ``handler``: a stream entry the bridge could not read).

The bridge (counted by this process): ``relay_bridge_entries_total``, ``relay_bridge_jobs_total``,
``relay_bridge_claimed_total``, ``relay_bridge_unhandled_total`` and ``relay_bridge_errors_total``.

Shared state, as this worker's bridge last saw it (every few seconds, `Bridge.check_backlog`; every
worker reports the same values, so aggregate them with ``max``, not ``sum``):

- ``relay_group_lag``: entries of ``relay:events`` not yet read by the consumer group;
- ``relay_group_pending``: entries read by a worker but not yet acknowledged (turned into jobs);
- ``relay_queue_due_jobs``: jobs due now in the arq queue;
- ``relay_dead_letters_stored``: entries in ``relay:dead``.

Like the edge's (`relay.core.metrics`), the numbers are plain Python counters turned into metric families
only when scraped; the scrape is served on the worker's event loop (`relay.core.exposition`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from relay.core.exposition import MetricsServer, serve
from relay.core.metrics import Timings
from relay.core.settings import Settings, listen_address

if TYPE_CHECKING:
    from worker.bridge import Bridge

log = logging.getLogger("worker.metrics")

WORKER_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
"""Seconds: from a no-op handler (about a millisecond) to the longest timeouts."""

RUN_OUTCOMES = ("ok", "retry", "dead", "skipped", "error")
DEAD_REASONS = ("exhausted", "permanent", "invalid_event", "worker_died", "unknown_handler")
MALFORMED = "malformed"


class WorkerMetrics:
    """One worker process's numbers, in a `CollectorRegistry` of its own.

    `handlers` are the registry's names: their series exist at 0 from the start. `bridge` is set by
    the worker's start-up once the bridge exists; until then its metrics are not exported.
    """

    def __init__(self, handlers: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Timings(["handler", "outcome"], WORKER_BUCKETS)
        self.dead_letters: dict[tuple[str, str], int] = {}
        for handler in handlers:
            for outcome in RUN_OUTCOMES:
                self.runs.row(handler, outcome)
            for reason in DEAD_REASONS:
                self.dead_letters[handler, reason] = 0
        self.bridge: Bridge | None = None
        self.registry.register(self)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def ran(self, handler: str, outcome: str, seconds: float) -> None:
        """Count one run of `handler` that ended in `outcome` after `seconds`."""
        self.runs.observe(self.runs.row(handler, outcome), seconds)

    def dead_lettered(self, handler: str, reason: str) -> None:
        """Count one dead letter written for `handler`, for `reason` (one of `DEAD_REASONS`)."""
        key = (handler, reason)
        self.dead_letters[key] = self.dead_letters.get(key, 0) + 1

    def collect(self) -> Iterable[Metric]:
        yield self.runs.counter_family("relay_handler_runs", "Handler runs, by handler and outcome.")
        yield self.runs.histogram_family(
            "relay_handler_duration_seconds", "How long handler runs took, by handler and outcome."
        )
        dead = CounterMetricFamily(
            "relay_dead_letters", "Dead letters written, by handler and reason.", labels=["handler", "reason"]
        )
        for (handler, reason), count in self.dead_letters.items():
            dead.add_metric([handler, reason], count)
        bridge = self.bridge
        if bridge is not None:
            dead.add_metric(["", MALFORMED], bridge.stats.malformed)
        yield dead
        if bridge is not None:
            yield from _bridge_families(bridge)


def _bridge_families(bridge: Bridge) -> Iterable[Metric]:
    stats = bridge.stats
    for name, value, documentation in (
        ("entries", stats.entries, "Stream entries dispatched (read or claimed) by this worker's bridge."),
        ("jobs", stats.jobs, "Handler jobs this worker's bridge enqueued."),
        ("claimed", stats.claimed, "Entries claimed from stopped or dead workers."),
        ("unhandled", stats.unhandled, "Entries no handler wanted (acknowledged)."),
        ("errors", stats.errors, "Errors (mostly Redis) the bridge recovered from."),
    ):
        yield CounterMetricFamily(f"relay_bridge_{name}", documentation, value=value)
    backlog = bridge.backlog
    if backlog is not None:
        lag = math.nan if backlog.lag is None else backlog.lag  # Redis cannot always tell (see Backlog)
        yield GaugeMetricFamily("relay_group_lag", "Entries of relay:events not yet read by the group.", lag)
        yield GaugeMetricFamily(
            "relay_group_pending", "Entries read by a worker, not yet acknowledged.", backlog.pending
        )
        yield GaugeMetricFamily("relay_dead_letters_stored", "Entries in relay:dead.", backlog.dead_letters)
    if bridge.queue_due is not None:
        yield GaugeMetricFamily("relay_queue_due_jobs", "Jobs due now in the arq queue.", bridge.queue_due)


async def serve_worker_metrics(settings: Settings, metrics: WorkerMetrics) -> MetricsServer | None:
    """Serve `metrics` on the first free port of ``RELAY_WORKER_METRICS`` and the ones after it.

    A worker that finds no free port runs on without metrics (logged as a warning): metrics are not
    worth refusing work for.
    """
    if settings.worker_metrics == "off":
        return None
    host, first = listen_address(settings.worker_metrics)
    ports = range(first, min(first + settings.worker_metrics_ports, 65536))
    try:
        server = await serve(metrics.registry, host, ports)
    except OSError as exc:
        log.warning(
            "worker metrics not served: no free port on %s from %d to %d (%s); raise RELAY_WORKER_METRICS_PORTS",
            host, ports[0], ports[-1], exc.strerror or exc,
        )  # fmt: skip
        return None
    log.info("worker metrics on %s", server.url, extra={"metrics_port": server.port})
    return server
