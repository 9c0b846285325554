"""``GET /healthz`` and ``GET /readyz``: what an orchestrator asks before routing traffic here."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from relay.edge.errors import REDIS_UNAVAILABLE, to_response

log = logging.getLogger(__name__)

router = APIRouter()

_ALIVE = b'{"status":"alive"}'
_READY = b'{"status":"ready"}'


@router.get("/healthz", summary="The process is alive (no Redis call)")
async def healthz() -> Response:
    return Response(_ALIVE, media_type="application/json")


@router.get(
    "/readyz",
    summary="Redis answers PING within the timeout",
    responses={503: {"description": "Redis is unavailable"}},
)
async def readyz(request: Request) -> Response:
    state = request.app.state
    client = getattr(state, "redis", None)
    try:
        if client is None:
            raise ConnectionError("the edge is not started")
        async with asyncio.timeout(state.redis_timeout):
            await client.ping()
    except Exception as exc:  # any failure means "not ready", never a 500
        log.warning("not ready: %s", type(exc).__name__)
        return to_response(REDIS_UNAVAILABLE)
    return Response(_READY, media_type="application/json")
