"""Property-based fuzzing of ``POST /webhook/topgg`` and ``POST /webhook/standard``, in-process, against
the real app and a real Redis: hostile signature headers (any bytes, timestamps of any size, repeated,
half-valid) never get a 5xx and never store anything; a valid signature over any body gets 2xx, 400
or 422, never a 5xx."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import event, given
from hypothesis import strategies as st

from relay.app import EdgeApp, create_app
from relay.core.keys import DEDUPE_PREFIX, EVENTS_STREAM
from tests.conftest import make_settings
from tests.security import strategies as hs
from tests.security.asgi import lifespan, request
from tests.security.conftest import MAX_BODY
from tests.support.senders import (
    SENDER_SETTINGS,
    TOPGG_AUTHORIZATION,
    standard_signed,
    standard_vote,
    topgg_legacy,
    topgg_signed,
    topgg_test,
    topgg_vote,
)

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:Generating overly large repr")]


@pytest.fixture
async def edge(redis_url: str) -> AsyncIterator[EdgeApp]:
    app = create_app(make_settings(redis_url, max_body_bytes=MAX_BODY, body_timeout=2.0, **SENDER_SETTINGS))
    async with lifespan(app):
        yield app


_now = int(time.time())
timestamps = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=_now - 600, max_value=_now + 600).map(str),
    st.text(max_size=30),
    st.sampled_from(["", " 1", "1.5", "0x10", "1e9", "\u0661\u0662", "NaN", "inf", str(_now) + "\x00"]),
)
values = st.one_of(st.text(max_size=120), st.binary(max_size=120).map(lambda b: b.decode("latin-1")))


def header_safe(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")


@st.composite
def topgg_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    t = draw(timestamps)
    v1 = draw(st.one_of(values, st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64)))
    shape = draw(st.sampled_from(["t,v1", "v1,t", "t only", "v1 only", "junk", "twice", "with auth"]))
    signature = {
        "t,v1": f"t={t},v1={v1}",
        "v1,t": f"v1={v1},t={t}",
        "t only": f"t={t}",
        "v1 only": f"v1={v1}",
        "junk": draw(values),
        "twice": f"t={t},v1={v1}",
        "with auth": f"t={t},v1={v1}",
    }[shape]
    headers = [(b"x-topgg-signature", header_safe(signature))]
    if shape == "twice":
        headers.append((b"x-topgg-signature", header_safe(signature)))
    if shape == "with auth" or draw(st.booleans()):
        headers.append(
            (b"authorization", header_safe(draw(st.one_of(values, st.just(TOPGG_AUTHORIZATION + "x")))))
        )
    if draw(st.booleans()):
        headers = [h for h in headers if h[0] != b"x-topgg-signature"]
    return [*draw(hs.odd_headers), *headers]


@st.composite
def standard_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    headers = {
        b"webhook-id": header_safe(draw(values)),
        b"webhook-timestamp": header_safe(draw(timestamps)),
        b"webhook-signature": header_safe(draw(st.one_of(values, st.just("v1,"), st.just("v1,AAAA v1,=")))),
    }
    kept = draw(st.lists(st.sampled_from(sorted(headers)), unique=True, max_size=3))
    pairs = [(name, headers[name]) for name in kept]
    if kept and draw(st.booleans()):
        pairs.append(pairs[0])  # a repeated header
    return [*draw(hs.odd_headers), *pairs]


async def stored_anything(redis: aioredis.Redis) -> bool:
    return bool(await redis.xlen(EVENTS_STREAM) or await redis.keys(f"{DEDUPE_PREFIX}*"))


async def assert_refused(
    edge: EdgeApp, redis: aioredis.Redis, headers: list[tuple[bytes, bytes]], body: bytes, path: str
) -> None:
    """Forged headers on `path`: 401 (413 for a body over the limit), never a 5xx, nothing stored."""
    reply = await request(edge, headers, [body], path=path)
    event(f"status {reply.status}")

    assert reply.status in (401, 413), reply
    assert not await stored_anything(redis)


@given(headers=topgg_headers(), body=hs.bodies)
async def test_forged_topgg_headers_are_401_never_5xx(
    edge: EdgeApp, redis: aioredis.Redis, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await assert_refused(edge, redis, headers, body, "/webhook/topgg")


@given(headers=standard_headers(), body=hs.bodies)
async def test_forged_standard_headers_are_401_never_5xx(
    edge: EdgeApp, redis: aioredis.Redis, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await assert_refused(edge, redis, headers, body, "/webhook/standard")


sender_bodies = st.one_of(
    hs.bodies,
    st.sampled_from([topgg_vote(), topgg_test(), topgg_legacy(), topgg_legacy("test"), standard_vote()]),
    st.integers(min_value=0, max_value=10**25).map(lambda n: topgg_vote(vote_id=str(n))),
)


@given(
    body=sender_bodies, which=st.sampled_from(["topgg", "standard"]), msg_id=st.text(min_size=1, max_size=40)
)
async def test_a_validly_signed_body_of_any_shape_is_never_5xx(
    edge: EdgeApp, redis: aioredis.Redis, body: bytes, which: str, msg_id: str
) -> None:
    clean_id = header_safe(msg_id).decode("latin-1").strip() or "id"
    signed = topgg_signed(body) if which == "topgg" else standard_signed(body, clean_id)
    headers = [(name.encode(), value.encode("latin-1")) for name, value in signed.items()]

    reply = await request(edge, headers, [body], path=f"/webhook/{which}")
    event(f"{which} status {reply.status}")

    assert reply.status in ((413,) if len(body) > MAX_BODY else (200, 202, 400, 422)), (reply, body[:200])


async def test_after_fuzzing_both_routes_still_store(edge: EdgeApp) -> None:
    vote, standard = topgg_vote(), standard_vote()
    topgg_reply = await request(
        edge, [(k.encode(), v.encode()) for k, v in topgg_signed(vote).items()], [vote], path="/webhook/topgg"
    )
    standard_reply = await request(
        edge,
        [(k.encode(), v.encode()) for k, v in standard_signed(standard).items()],
        [standard],
        path="/webhook/standard",
    )
    assert (topgg_reply.status, standard_reply.status) == (202, 202)
