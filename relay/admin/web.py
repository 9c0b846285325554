"""The admin page's glue to HTTP: its state, rendering (HTML or JSON), authentication and CSRF.

Errors form a small tree, each answered in one place (`relay.admin.app`):

    AdminError
    ├── Unauthorized  -- 401, the same page whatever the cause
    ├── Throttled     -- 429, too many wrong tokens from this address
    ├── CsrfRefused   -- 403, a POST without the form's CSRF token
    ├── NotFound      -- 404
    ├── BadRequest    -- 400, with the reason
    └── Conflict      -- 409, e.g. a replay the workers could not run
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from redis.asyncio import Redis

from relay.admin.auth import SESSION_COOKIE, FailureThrottle, Operator, Tokens, same
from relay.admin.jobs import Jobs
from relay.cli.timespec import ago, iso, span
from relay.core.senders import PAYLOADS, split
from relay.core.settings import Settings
from worker.registry import Registry

TEMPLATES = Path(__file__).with_name("templates")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class AdminError(Exception):
    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(AdminError):
    status = 401


class Throttled(AdminError):
    status = 429

    def __init__(self, wait: float) -> None:
        super().__init__(f"too many wrong tokens from your address: try again in {max(1, round(wait))}s")
        self.wait = wait


class CsrfRefused(AdminError):
    status = 403


class NotFound(AdminError):
    status = 404


class BadRequest(AdminError):
    status = 400


class Conflict(AdminError):
    status = 409


@dataclass
class AdminState:
    """What every request of the page shares; built in the app's lifespan."""

    settings: Settings
    registry: Registry
    tokens: Tokens
    throttle: FailureThrottle
    redis: Redis
    redis_name: str
    jobs: Jobs


def state(request: Request) -> AdminState:
    found: AdminState = request.app.state.admin
    return found


class SafeJSONResponse(JSONResponse):
    """JSON with ``<``, ``>`` and ``&`` escaped, so that no value can ever read as markup."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = lambda ms: iso(ms) if ms else "-"
    env.filters["span"] = span
    env.globals["ago"] = ago
    env.globals["source_of"] = lambda stored_type: split(stored_type)[0]
    env.globals["sources"] = tuple(PAYLOADS)
    return env


ENV = _environment()


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200, refresh: int | None = None
) -> HTMLResponse:
    operator: Operator | None = getattr(request.state, "operator", None)
    page = ENV.get_template(template).render(
        **context,
        csrf=operator.csrf if operator else None,
        signed_in=operator is not None,
        refresh=refresh,
        path=request.url.path,
    )
    return HTMLResponse(page, status_code=status)


def answer(
    request: Request,
    template: str,
    context: dict[str, Any],
    document: Any,
    *,
    status: int = 200,
    refresh: int | None = None,
) -> Response:
    """The page, or its JSON twin (`document`) when the client asks for JSON."""
    if wants_json(request):
        return SafeJSONResponse(document, status_code=status)
    return render(request, template, context, status=status, refresh=refresh)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def operator(request: Request) -> Operator:
    """The dependency of every page and action: a bearer token or a session cookie, else 401."""
    admin = state(request)
    header = request.headers.get("authorization")
    if header is not None:
        address = client_address(request)
        wait = admin.throttle.wait(address, time.monotonic())
        if wait > 0:
            raise Throttled(wait)
        found = admin.tokens.bearer(header)
        if found is None:
            admin.throttle.failed(address, time.monotonic())
            raise Unauthorized()
        admin.throttle.succeeded(address)
    else:
        found = admin.tokens.session(request.cookies.get(SESSION_COOKIE))
        if found is None:
            raise Unauthorized()
    request.state.operator = found
    return found


async def checked_form(request: Request) -> dict[str, str]:
    """The dependency of every POST: the signed-in operator's form, its CSRF token checked.

    A bearer token needs none (a browser never adds it by itself); a session needs the form's
    ``csrf`` field to equal the session's.
    """
    who = await operator(request)
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    if who.csrf is not None and not same(values.get("csrf", ""), who.csrf):
        raise CsrfRefused("this form is missing its CSRF token or it is stale: reload the page and try again")
    return values
