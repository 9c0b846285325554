"""The admin page's composition root: ``create_admin_app(settings, registry)``.

The lifespan owns the Redis client and the bulk jobs. Every answer carries the security headers
(`relay.admin.web.SECURITY_HEADERS`: a CSP without inline script, no framing, no caching); every
error of the small tree in `relay.admin.web` is answered here, as a page or as JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from relay.admin.auth import FailureThrottle, Tokens
from relay.admin.jobs import Jobs
from relay.admin.pages import router
from relay.admin.web import (
    SECURITY_HEADERS,
    AdminError,
    AdminState,
    SafeJSONResponse,
    Throttled,
    render,
    wants_json,
)
from relay.core.redis import async_client, describe
from relay.core.settings import Settings
from relay.ops.redis import explain as explain_redis
from worker.registry import Registry

STATIC = Path(__file__).with_name("static")


def create_admin_app(
    settings: Settings, registry: Registry, *, throttle: FailureThrottle | None = None
) -> FastAPI:
    """The admin page for `settings` (``admin_token`` is required) and the handlers in `registry`."""
    if settings.admin_token is None:
        raise ValueError("RELAY_ADMIN_TOKEN is required")
    token = settings.admin_token.get_secret_value()
    redis_name = describe(settings)

    def explain(exc: Exception) -> str:
        if isinstance(exc, RedisError):
            return explain_redis(exc, redis_name).message
        return f"cannot reach Redis at {redis_name}: {exc}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = async_client(settings, socket_connect_timeout=2, socket_timeout=5)
        jobs = Jobs(explain)
        app.state.admin = AdminState(
            settings=settings,
            registry=registry,
            tokens=Tokens(token),
            throttle=throttle or FailureThrottle(),
            redis=redis,
            redis_name=redis_name,
            jobs=jobs,
        )
        try:
            yield
        finally:
            await jobs.stop()
            await redis.aclose()

    app = FastAPI(
        title="Sphere Relay admin", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def error_page(request: Request, status: int, title: str, message: str) -> Response:
        if wants_json(request):
            return SafeJSONResponse({"error": title, "detail": message}, status_code=status)
        return render(
            request, "error.html", {"title": title, "message": message, "status": status}, status=status
        )

    @app.exception_handler(AdminError)
    async def admin_error(request: Request, exc: AdminError) -> Response:
        if exc.status == 401:
            if wants_json(request):
                return SafeJSONResponse({"error": "unauthorized"}, status_code=401)
            page = render(request, "unauthorized.html", {}, status=401)
            page.headers["WWW-Authenticate"] = 'Bearer realm="relay admin"'
            return page
        titles = {400: "Bad request", 403: "Refused", 404: "Not found", 409: "Not done", 429: "Slow down"}
        response = error_page(request, exc.status, titles.get(exc.status, "Error"), exc.message)
        if isinstance(exc, Throttled):
            response.headers["Retry-After"] = str(max(1, round(exc.wait)))
        return response

    @app.exception_handler(RedisError)
    @app.exception_handler(OSError)
    async def redis_down(request: Request, exc: Exception) -> Response:
        message = f"{explain(exc)}. Nothing was changed; try again once Redis is back."
        return error_page(request, 503, "Redis is unavailable", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return error_page(request, status, "Not found" if status == 404 else "Bad request", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_page(request, 400, "Bad request", "the request's parameters are not valid")

    return app
