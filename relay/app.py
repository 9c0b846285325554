"""The edge's ASGI application: wiring only.

``uvicorn relay.app:app`` reads the settings from the environment when it first looks ``app`` up
(not when this module is imported), so tests and tools build their own with `create_app`.

Requests for ``POST /webhook`` (and the other senders' routes, `relay.edge.senders`) go straight to
their `relay.edge.webhook.WebhookEndpoint`, ahead of FastAPI's middleware and routing; everything
else (probes, docs, 404, 405) is served by FastAPI. The lifespan creates the Redis client and the
ingest writer, and closes them.

Metrics (`relay.core.metrics`) live in a registry of this app's own. ``RELAY_METRICS=on`` serves them at
``GET /metrics`` here; a ``[host:]port`` serves them there instead (`relay.core.exposition`), started and
stopped by the lifespan; ``off`` serves them nowhere.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from relay.core.exposition import MetricsServer, render, serve
from relay.core.logs import configure_logging
from relay.core.networks import Address
from relay.core.redis import async_client, check, describe
from relay.core.settings import Settings, listen_address, load_settings
from relay.edge import probes, webhook
from relay.edge.allowlist import AllowList
from relay.edge.errors import error_answer, http_error_answer, to_response
from relay.edge.ingest import IngestWriter
from relay.edge.metrics import EdgeMetrics
from relay.edge.rejections import RejectionRecorder
from relay.edge.senders import SenderEndpoint, configured
from relay.edge.senders import openapi as senders_openapi
from relay.edge.webhook import WebhookEndpoint

log = logging.getLogger(__name__)

FORBIDDEN_SOURCE = "forbidden_source"
"""The ``error`` of the 403 for a request from outside ``RELAY_ALLOWED_SOURCES``."""


class EdgeApp:
    """Sends ``POST`` to a webhook route directly to its endpoint and everything else to FastAPI.

    `routes` holds the routes of the senders that are on (``/webhook`` only when ``RELAY_SECRET`` is
    set); FastAPI answers 404 on the path of a sender that is off.
    """

    def __init__(self, endpoint: WebhookEndpoint, api: FastAPI, routes: dict[str, WebhookEndpoint]) -> None:
        self.endpoint = endpoint
        self.api = api
        self.metrics = endpoint.metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is not None:
            if scope["method"] == "POST":
                await endpoint(scope, receive, send)
                return
            started = time.perf_counter()  # another method: FastAPI answers 405, counted with the rest
            await self.api(scope, receive, send)
            self.metrics.observe("method_not_allowed", time.perf_counter() - started)
        else:
            await self.api(scope, receive, send)


class AllowListedEdgeApp(EdgeApp):
    """An `EdgeApp` that first refuses ``/webhook`` requests from outside ``RELAY_ALLOWED_SOURCES``.

    A subclass chosen by `create_app` only when the allow-list is on, so that without one the hot
    path does not even test for it.
    """

    def __init__(
        self,
        endpoint: WebhookEndpoint,
        api: FastAPI,
        routes: dict[str, WebhookEndpoint],
        allow_list: AllowList,
    ) -> None:
        super().__init__(endpoint, api, routes)
        self.allow_list = allow_list

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.routes:
            allowed, client = self.allow_list.verdict(scope)
            if not allowed:
                await self._refuse(scope, send, client)
                return
        await super().__call__(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, client: Address | None) -> None:
        # Before the body is read: a stranger's body is not worth receiving.
        started = time.perf_counter()
        seen = "an unknown address" if client is None else str(client)
        answer = error_answer(FORBIDDEN_SOURCE, 403, f"requests from {seen} may not post webhooks")
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
        await send({"type": "http.response.body", "body": answer.body})
        elapsed = time.perf_counter() - started
        self.metrics.observe(FORBIDDEN_SOURCE, elapsed)
        self.endpoint.request_log.write(FORBIDDEN_SOURCE, 403, 0, None, None, elapsed)
        if self.endpoint.rejections is not None:
            self.endpoint.rejections.record(scope, 403, FORBIDDEN_SOURCE, 0, b"", time.time_ns() // 1_000_000)


class _EdgeAPI(FastAPI):
    senders: list[SenderEndpoint]
    sphere: bool

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        # FastAPI documents only its own routes: the webhook routes that are on are added here.
        if self.sphere:
            webhook.openapi(schema)
        senders_openapi(schema, [endpoint.sender for endpoint in self.senders])
        return schema


def create_app(settings: Settings) -> EdgeApp:
    """Build the edge for `settings`. Nothing connects until the ASGI lifespan starts."""
    metrics = EdgeMetrics()
    endpoint = WebhookEndpoint(settings, metrics)
    senders = [SenderEndpoint(settings, sender, metrics) for sender in configured(settings)]
    routes: dict[str, WebhookEndpoint] = {webhook.PATH: endpoint} if settings.secret else {}
    routes.update((sender.path, sender) for sender in senders)
    endpoints = [endpoint, *senders]

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        metrics_server = await _serve_metrics(settings, metrics)  # first: nothing to undo if it fails
        # No socket_timeout: the writer and the probe bound every call themselves, once per
        # batch, where redis-py would start a timer for every reply.
        client = async_client(settings, socket_connect_timeout=settings.redis_timeout)
        writer = IngestWriter(
            client,
            dedupe_seconds=settings.dedupe_seconds,
            timeout=settings.redis_timeout,
            on_redis_error=metrics.redis_error,
            min_replicas=settings.min_replicas,
            replica_timeout=settings.replica_timeout,
        )
        api.state.redis = client
        api.state.redis_timeout = settings.redis_timeout
        api.state.min_replicas = settings.min_replicas
        rejections = RejectionRecorder(client, timeout=settings.redis_timeout)
        for each in endpoints:
            each.writer, each.rejections = writer, rejections
        # Everything alive now lives until shutdown: keep it out of the collector's scans, which
        # otherwise show up as latency spikes under load.
        gc.collect()
        gc.freeze()
        log.info(
            "edge ready",
            extra={
                "redis": describe(settings),
                "min_replicas": settings.min_replicas,
                "max_body_bytes": settings.max_body_bytes,
                "dedupe_seconds": settings.dedupe_seconds,
                "previous_secrets": len(settings.previous_secrets),
                "routes": ",".join(routes),
                "metrics": metrics_server.url if metrics_server else settings.metrics,
            },
        )
        for each in endpoints:
            each.request_log.start()  # after configure_logging: it decides how lines are written
        try:
            yield
        finally:
            for each in endpoints:
                each.writer, each.rejections = None, None
            await writer.close()
            await rejections.close()
            for each in endpoints:
                each.request_log.stop()  # the last tick's lines; any later ones are logged as usual
            if metrics_server is not None:
                await metrics_server.close()
            api.state.redis = None
            await client.aclose()
            gc.unfreeze()

    api = _EdgeAPI(
        title="Sphere Relay",
        version="0.1.0",
        lifespan=lifespan,
        # Off on the public port unless RELAY_OPENAPI asks: the schema is only for humans and tests.
        docs_url="/docs" if settings.openapi else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.openapi else None,
    )
    api.senders, api.sphere = senders, settings.secret is not None
    api.include_router(probes.router)
    # The same endpoints as routes, so that FastAPI answers 405 for other methods on their paths.
    for path, each in routes.items():
        api.router.routes.append(Route(path, each, methods=["POST"], include_in_schema=False))
    api.add_exception_handler(HTTPException, _http_error)
    if settings.metrics == "on":

        async def metrics_page(request: Request) -> Response:
            body, content_type = render(metrics.registry, request.headers.get("accept"))
            return Response(body, media_type=content_type)

        api.add_api_route("/metrics", metrics_page, methods=["GET"], include_in_schema=False)
    if settings.allowed_sources:
        return AllowListedEdgeApp(
            endpoint, api, routes, AllowList(settings.allowed_sources, settings.trusted_proxies)
        )
    return EdgeApp(endpoint, api, routes)


async def _serve_metrics(settings: Settings, metrics: EdgeMetrics) -> MetricsServer | None:
    """The metrics' own listener when ``RELAY_METRICS`` names an address; the edge fails to start
    when it cannot listen there, rather than run unwatched."""
    if settings.metrics in ("on", "off"):
        return None
    host, port = listen_address(settings.metrics)
    return await serve(metrics.registry, host, [port])


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return to_response(http_error_answer(exc.status_code, exc.detail), exc.headers)


_app: EdgeApp | None = None


def __getattr__(name: str) -> EdgeApp:
    # PEP 562: `relay.app:app` is built on first access, from the environment, so that importing
    # this module never reads settings (and `load_settings` exits cleanly on a bad secret).
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        settings = load_settings()
        configure_logging(settings)
        _check_redis(settings)
        _app = create_app(settings)
    return _app


def _check_redis(settings: Settings) -> None:
    """Before serving: a password or certificate Redis refuses stops the edge with one line (waiting
    cannot cure it); an unreachable Redis is only reported, the edge answers 503 until it comes."""
    why = check(settings, timeout=settings.redis_timeout)
    if why is None:
        return
    where = describe(settings)
    if why.fatal:
        raise SystemExit(f"sphere-relay: cannot use Redis at {where}: {why.reason}; {why.advice()}")
    log.warning(
        "cannot reach Redis at %s: %s; answering 503 until it does",
        where, why.reason, extra={"redis": where, "reason": why.kind},
    )  # fmt: skip
