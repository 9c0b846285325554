"""``GET /healthz`` and ``GET /readyz``: what an orchestrator asks before routing traffic here."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from redis.asyncio import Redis

from relay.core.redis import failure
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
    summary="Redis answers within the timeout (and has RELAY_MIN_REPLICAS replicas connected)",
    responses={503: {"description": "Redis is unavailable"}},
)
async def readyz(request: Request) -> Response:
    state = request.app.state
    client = getattr(state, "redis", None)
    try:
        if client is None:
            raise ConnectionError("the edge is not started")
        async with asyncio.timeout(state.redis_timeout):
            if state.min_replicas > 0:
                await _enough_replicas(client, state.min_replicas)
            else:
                await client.ping()
    except Exception as exc:  # any failure means "not ready", never a 500
        log.warning("not ready: %s", failure(exc).reason)
        return to_response(REDIS_UNAVAILABLE)
    return Response(_READY, media_type="application/json")


class TooFewReplicas(Exception):
    """The primary has fewer replicas connected than an acknowledgement waits for."""


async def _enough_replicas(client: Redis, needed: int) -> None:
    info = await client.info("replication")
    connected = int(info.get("connected_slaves", 0))
    if info.get("role") != "master" or connected < needed:
        raise TooFewReplicas(
            f"{connected} replica(s) connected to a {info.get('role')}, RELAY_MIN_REPLICAS={needed}"
        )
