"""``arq worker.main.WorkerSettings``: the worker process, started with arq's own CLI.

``WorkerSettings`` is built when arq asks for it, not at import: the module-level ``__getattr__``
(PEP 562) reads the ``RELAY_*`` settings, imports the tasks module (``RELAY_TASKS``, default
``worker.tasks``) whose ``@on`` handlers register themselves, and returns the keyword arguments for
arq's ``Worker`` as a dict (arq accepts a dict as well as a class). Tests call `build_worker_settings`
with their own settings and `Registry`.

What a worker process runs:

- arq, with one function (``relay.run_handler``, `worker.jobs`) that runs whichever handler a job
  names, tuned for short handlers: a 10 ms poll while there is work, backing off to 1 s while idle
  (`worker.idle`), up to ``RELAY_WORKER_CONCURRENCY`` (100) concurrent jobs;
- the bridge (`worker.bridge`) as a background task started in ``on_startup``, feeding arq from
  ``relay:events`` and trimming the stream;
- the tasks module's ``startup(ctx)`` and ``shutdown(ctx)``, if it defines them;
- its heartbeat (`worker.heartbeat`), ``relay:worker:<consumer name>`` every 5 s;
- its metrics (`worker.metrics`) on the first free port from ``RELAY_WORKER_METRICS`` (9100) on,
  started in ``on_startup`` and closed in ``on_shutdown``.

On SIGTERM (or SIGINT) the bridge stops taking entries at once, arq stops picking jobs, and running
handlers get their timeout to finish (arq's ``job_completion_wait``); then the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

from relay.core.exposition import MetricsServer
from relay.core.logs import configure_logging
from relay.core.redis import describe
from relay.core.settings import Settings, load_settings
from worker import outcomes
from worker.bridge import Bridge, BridgeOptions, consumer_name
from worker.checks import TasksError, check_registry, import_tasks
from worker.connection import ResilientArqRedis, worker_redis
from worker.forward.handlers import Forwarding, delivery_handlers, with_forwarding
from worker.heartbeat import HeartbeatWriter, InFlight, heartbeat_client
from worker.jobs import (
    ARQ_MAX_TRIES,
    UNKNOWN_HANDLER_BACKOFF,
    UNKNOWN_HANDLER_TRIES,
    arq_function,
    job_timeout,
    keep_result_seconds,
)
from worker.keys import ARQ_QUEUE
from worker.loop import install_event_loop
from worker.metrics import WorkerMetrics, serve_worker_metrics
from worker.registry import Registry, default_registry

log = logging.getLogger("worker.main")

Hook = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Hooks:
    """The tasks module's optional ``startup(ctx)`` and ``shutdown(ctx)`` (async or plain functions)."""

    startup: Hook | None = None
    shutdown: Hook | None = None

    @classmethod
    def from_module(cls, module: ModuleType) -> Hooks:
        return cls(startup=getattr(module, "startup", None), shutdown=getattr(module, "shutdown", None))


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Knobs of the worker process that are not user settings."""

    max_jobs: int | None = None
    """Handlers running at once in one process; default ``RELAY_WORKER_CONCURRENCY``."""
    poll_delay: float = 0.01
    """Seconds between arq's looks at its queue while there is work (arq's default of 0.5 s would add
    that much latency); an idle worker's client spaces them out (`worker.idle`)."""
    health_check_interval: int = 60
    unknown_handler_tries: int = UNKNOWN_HANDLER_TRIES
    """Runs of a job whose handler this worker lacks before it is dead-lettered (see `worker.jobs`)."""
    unknown_handler_backoff: float = UNKNOWN_HANDLER_BACKOFF
    bridge: BridgeOptions = field(default_factory=BridgeOptions)
    run_bridge: bool = True
    """Tests turn the background bridge off and step a `Bridge` themselves."""
    configure_logging: bool = True
    """Set up the relay's log format at start-up (tests keep pytest's)."""
    wait_for_redis: bool = True
    """The first connection waits for Redis, logging why each try failed (`worker.startup`)."""


async def _call(hook: Hook, ctx: dict[str, Any]) -> None:
    result = hook(ctx)
    if inspect.isawaitable(result):
        await result


ARQ_LOGGERS = ("arq.worker", "arq.connections", "arq.jobs", "arq.utils")
"""The loggers arq writes through, all children of ``arq``."""


class ArqLines(logging.Filter):
    """On arq's loggers: arq's lines in the relay's format and at its level, without the per-job ones.

    arq's CLI imports ``WorkerSettings``, then sets up logging its own way (a handler in its own format
    on the ``arq`` logger, at INFO, and its children reset), then logs its first lines before
    ``on_startup``. A logger's filters are the one thing that set-up leaves alone, so this one, added
    when the relay configures logging, takes arq's handler off again before the first line is handled.
    arq's lines about each job are dropped: the relay logs its own (`worker.jobs`), with the event's
    fields. Both rest on arq 0.28's ways (docs/INTERNALS.md).
    """

    JOB_FORMATS = frozenset({"%6.2fs → %s(%s)%s", "%6.2fs ← %s ● %s", "%6.2fs ↻ %s retrying job in %0.2fs"})
    """arq 0.28's formats of its INFO lines about each job: started, finished, retrying."""

    def filter(self, record: logging.LogRecord) -> bool:
        arq_logger = logging.getLogger("arq")
        if arq_logger.handlers:
            arq_logger.handlers.clear()
            arq_logger.propagate = True
        if record.levelno < logging.getLogger().level:  # RELAY_LOG_LEVEL, not arq's INFO
            return False
        return not (record.levelno == logging.INFO and record.msg in self.JOB_FORMATS)


def _configure_logging(settings: Settings) -> None:
    """The relay's log format (``RELAY_LOG_FORMAT``, ``RELAY_LOG_LEVEL``) for every line, arq's too.

    Runs when ``WorkerSettings`` is built (before arq's CLI logs anything) and again at start-up.
    Every line has one format, so JSON lines stay parseable, and none is printed twice.
    """
    configure_logging(settings)
    logging.getLogger("arq").handlers.clear()
    for name in ARQ_LOGGERS:
        arq_logger = logging.getLogger(name)
        if not any(isinstance(f, ArqLines) for f in arq_logger.filters):
            arq_logger.addFilter(ArqLines())


def chain_stop_signals(before: Callable[[], None]) -> bool:
    """Make SIGTERM and SIGINT call `before` first, then the handler arq installed.

    arq registers its shutdown handler with ``loop.add_signal_handler`` when the worker is built and
    offers no hook of its own, so this reads arq's handler back from the loop's handler table
    (``loop._signal_handlers``, a private attribute of asyncio's Unix loops) and installs a handler
    that runs `before` and then arq's. Returns False, changing nothing, if no arq handler is found
    (another event loop, or ``handle_signals=False``); the bridge then stops only at shutdown.
    """
    loop = asyncio.get_running_loop()
    table = getattr(loop, "_signal_handlers", None)
    chained = False
    for signum in (signal.SIGTERM, signal.SIGINT):
        original = table.get(signum) if isinstance(table, dict) else None
        if not isinstance(original, asyncio.Handle):
            continue

        def run_both(original: asyncio.Handle = original) -> None:
            before()
            original._run()

        loop.add_signal_handler(signum, run_both)
        chained = True
    return chained


class Lifecycle:
    """arq's ``on_startup`` / ``on_shutdown``: the user's hooks, the bridge and the metrics."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        hooks: Hooks,
        options: WorkerOptions,
        metrics: WorkerMetrics | None = None,
        in_flight: InFlight | None = None,
        forwarding: Forwarding | None = None,
    ) -> None:
        self.settings = settings
        self.forwarding = forwarding
        self.registry = registry
        self.hooks = hooks
        self.options = options
        self.metrics = metrics if metrics is not None else WorkerMetrics(h.name for h in registry)
        self.metrics_server: MetricsServer | None = None
        self.bridge: Bridge | None = None
        self._bridge_task: asyncio.Task[None] | None = None
        self.in_flight = in_flight if in_flight is not None else InFlight()
        self.heartbeat: HeartbeatWriter | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None

    async def on_startup(self, ctx: dict[str, Any]) -> None:
        if self.options.configure_logging:
            _configure_logging(self.settings)
        self.metrics_server = await serve_worker_metrics(self.settings, self.metrics)
        if self.forwarding is not None:
            await self.forwarding.start()
        if self.hooks.startup is not None:
            await _call(self.hooks.startup, ctx)
        if self.options.run_bridge:
            self.bridge = Bridge(ctx["redis"], self.registry, self.settings, options=self._bridge_options())
            self.metrics.bridge = self.bridge
            self._bridge_task = asyncio.create_task(self.bridge.run(), name="relay-bridge")
            if not chain_stop_signals(self._stopping(ctx, self.bridge)):
                log.warning("could not hook SIGTERM: the bridge will stop only when the worker shuts down")
            log.info("handlers: %s", ", ".join(h.name for h in self.registry))
        # The heartbeat's name is the bridge's consumer name, so `relay stats` can tell the two apart.
        name = self.bridge.consumer if self.bridge is not None else consumer_name()
        # Its own client, without retries: a beat that cannot reach Redis fails (and says why) at
        # once, where arq's client would retry for ~30 s in silence.
        self.heartbeat = HeartbeatWriter(
            heartbeat_client(self.settings), name, self.in_flight, where=describe(self.settings)
        )
        self._heartbeat_task = asyncio.create_task(self.heartbeat.run(), name="relay-heartbeat")

    def _bridge_options(self) -> BridgeOptions:
        """The bridge keeps about two rounds of its worker's jobs queued: one running, one waiting."""
        bridge = self.options.bridge
        if bridge.own_jobs is not None:
            return bridge
        return replace(bridge, own_jobs=2 * (self.options.max_jobs or self.settings.worker_concurrency))

    @staticmethod
    def _stopping(ctx: dict[str, Any], bridge: Bridge) -> Callable[[], None]:
        """What SIGTERM does before arq's own handler: the bridge takes no more entries, and Redis
        failures stop waiting between retries (a Redis that is gone cannot hold up the shutdown)."""
        redis = ctx["redis"]

        def stop() -> None:
            bridge.stop()
            if isinstance(redis, ResilientArqRedis):
                redis.stop_retrying()

        return stop

    async def after_job_end(self, ctx: dict[str, Any]) -> None:
        """A job ended (a retry or a later job may now wait in the queue): arq's poll looks again."""
        pacer = getattr(ctx.get("redis"), "pacer", None)
        if pacer is not None:
            pacer.wake()

    async def on_shutdown(self, ctx: dict[str, Any]) -> None:
        if self.bridge is not None and self._bridge_task is not None:
            self.bridge.stop()
            # The step in progress ends within block_ms; cancelling it could only leave entries
            # pending (claimed later by another worker), never acknowledged without jobs.
            try:
                await asyncio.wait_for(self._bridge_task, self.options.bridge.block_ms / 1000 + 5)
            except TimeoutError:
                log.warning(
                    "bridge did not stop in time; its unacknowledged entries will be claimed by another worker"
                )
            with contextlib.suppress(asyncio.CancelledError):
                await self._bridge_task
            await self.bridge.close()
        if self.heartbeat is not None and self._heartbeat_task is not None:
            self.heartbeat.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            await self.heartbeat.close()
            await self.heartbeat.redis.aclose()
        if self.hooks.shutdown is not None:
            try:
                await _call(self.hooks.shutdown, ctx)
            except Exception:  # the process is ending anyway; its metrics listener still closes
                log.exception("the tasks module's shutdown(ctx) failed")
        if self.forwarding is not None:
            await self.forwarding.close()
        await outcomes.flush(ctx.get("redis"))  # the last runs' outcomes, before arq closes the pool
        if self.metrics_server is not None:
            await self.metrics_server.close()
            self.metrics_server = None


def build_worker_settings(
    settings: Settings,
    registry: Registry,
    hooks: Hooks | None = None,
    options: WorkerOptions | None = None,
    metrics: WorkerMetrics | None = None,
) -> dict[str, Any]:
    """Keyword arguments for arq's ``Worker`` running `registry`'s handlers; a fresh dict each call.

    `metrics` (new ones by default) count the runs and are served by the worker's start-up.
    """
    forwarding = Forwarding(settings) if settings.forward_url else None
    if forwarding is not None:  # RELAY_FORWARD_URL: one built-in handler per destination
        registry = with_forwarding(registry, delivery_handlers(settings, forwarding))
    if not len(registry):
        raise TasksError(
            [
                f"no handlers registered: decorate functions in {settings.tasks} with @on(...), or set RELAY_FORWARD_URL"
            ]
        )
    problems = check_registry(registry)
    if problems:
        raise TasksError(problems)
    options = options or WorkerOptions()
    metrics = metrics if metrics is not None else WorkerMetrics(h.name for h in registry)
    in_flight = InFlight()
    lifecycle = Lifecycle(settings, registry, hooks or Hooks(), options, metrics, in_flight, forwarding)
    longest = job_timeout(registry)
    function = arq_function(
        registry,
        settings,
        unknown_tries=options.unknown_handler_tries,
        unknown_backoff=options.unknown_handler_backoff,
        metrics=metrics,
        in_flight=in_flight,
    )
    return {
        "functions": [function],
        "queue_name": ARQ_QUEUE,
        # arq's own client, built by the relay's one Redis factory (TLS options, Sentinel), and a
        # connection dropped mid-transaction cannot end its poll loop.
        "redis_pool": worker_redis(
            settings,
            queue=ARQ_QUEUE,
            expires_extra_ms=settings.retention_ms,
            wait_at_start=options.wait_for_redis,
        ),
        "on_startup": lifecycle.on_startup,
        "on_shutdown": lifecycle.on_shutdown,
        "after_job_end": lifecycle.after_job_end,
        "max_jobs": options.max_jobs or settings.worker_concurrency,
        "poll_delay": options.poll_delay,
        "job_timeout": longest,
        # SIGTERM: running handlers may use their whole timeout (plus the margin to record a failure).
        "job_completion_wait": math.ceil(longest),
        "keep_result": keep_result_seconds(settings),
        "max_tries": ARQ_MAX_TRIES,
        "expires_extra_ms": settings.retention_ms,
        "health_check_interval": options.health_check_interval,
        "ctx": {"settings": settings},
    }


def load_worker_settings() -> dict[str, Any]:
    """`build_worker_settings` from the environment and the ``RELAY_TASKS`` module; exits on bad config."""
    settings = load_settings()
    if not logging.getLogger().handlers:  # like logging.basicConfig: a program's own set-up stays
        _configure_logging(settings)
    try:
        module = import_tasks(settings.tasks)
        worker_settings = build_worker_settings(settings, default_registry, Hooks.from_module(module))
    except TasksError as exc:  # one line per problem, and no work taken
        raise SystemExit("\n".join(f"sphere-relay: {line}" for line in exc.lines)) from None
    install_event_loop()  # arq builds its Worker next, on the thread's event loop: make that uvloop's
    return worker_settings


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        return load_worker_settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
