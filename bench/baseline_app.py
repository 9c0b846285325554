"""The baseline: the receiver a FastAPI user would write by hand, following the framework's docs.

It does what Sphere's guide asks, correctly: ``await request.body()``, HMAC-SHA256 checked with
`hmac.compare_digest`, a pydantic model, and one redis.asyncio ``XADD``. It has no deduplication and
none of the edge's error handling; the bench holds the relay to at least 3x its throughput. Run as
``uvicorn bench.baseline_app:app`` with ``RELAY_SECRET`` and ``RELAY_REDIS_URL`` set.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, ValidationError

from bench.keys import BASELINE_STREAM


class Content(BaseModel):
    title: str
    description: str


class Review(BaseModel):
    id: str
    published_timestamp: int
    stars: int
    content: Content


class SphereEvent(BaseModel):
    event: str
    guild_id: str
    user_id: str
    review: Review | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.secret = os.environ["RELAY_SECRET"].encode()
    app.state.redis = aioredis.Redis.from_url(os.environ["RELAY_REDIS_URL"])
    yield
    await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.post("/webhook", status_code=202)
async def webhook(request: Request, x_sphere_signature: str = Header(default="")) -> dict[str, str]:
    body = await request.body()
    expected = hmac.new(request.app.state.secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, x_sphere_signature.lower()):
        raise HTTPException(status_code=401, detail="invalid signature")
    try:
        event = SphereEvent.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail="invalid event") from exc
    entry_id = await request.app.state.redis.xadd(BASELINE_STREAM, {"type": event.event, "body": body})
    return {"status": "queued", "id": entry_id.decode()}
