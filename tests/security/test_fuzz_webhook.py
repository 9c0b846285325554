"""Property-based fuzzing of ``POST /webhook``, in-process, against the real app and a real Redis.

Two properties, each over a few hundred generated requests (see conftest.py for the profiles):

- without exactly one valid signature, nothing is ever stored: the answer is 401 (413 when the body
  is over the limit), and neither ``relay:events`` nor a dedupe key exists afterwards;
- with one, the answer is 2xx, 400 or 422, a 2xx names an entry holding exactly the body sent, a
  4xx leaves the stream as it was, and an independent oracle (the standard library's JSON parser)
  agrees with each 400 and 422.

Either way: never a 5xx, never an exception out of the app, and the edge still stores a valid
event afterwards. Bodies: random bytes, random JSON, Sphere-shaped events with wrong types,
numbers far past 64 bits, deep nesting, invalid UTF-8, duplicate keys, odd framing; headers: any
token names and byte values, odd Content-Length values, repeated signature headers; the body
arrives in random pieces.
"""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis
from hypothesis import event, given

from relay.app import EdgeApp
from relay.core.events import MODELS
from relay.core.keys import DEDUPE_PREFIX, EVENTS_STREAM, F_BODY
from tests.security import strategies as hs
from tests.security.asgi import Reply, request
from tests.security.conftest import MAX_BODY

pytestmark = [
    pytest.mark.anyio,
    # A failing example's body can be tens of kB; hypothesis warns before printing it.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

VOTE = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"2"}'


def declared_over_limit(length: bytes | None) -> bool:
    return length is not None and length.isdigit() and int(length) > MAX_BODY


async def stored_anything(redis: aioredis.Redis) -> bool:
    return bool(await redis.xlen(EVENTS_STREAM) or await redis.keys(f"{DEDUPE_PREFIX}*"))


async def still_stores_a_valid_event(edge: EdgeApp) -> None:
    """The process is alive and well: a valid event sent after the fuzzing is stored."""
    body = VOTE.replace(b'"2"', b'"424242"')
    reply = await request(edge, [(hs.SIGNATURE, hs.hex_signature(body).encode())], [body])
    assert reply.status in (200, 202), reply


def assert_json_error(reply: Reply) -> None:
    assert (b"content-type", b"application/json") in reply.headers
    assert "error" in json.loads(reply.body)


@given(hs.forged_requests())
async def test_without_one_valid_signature_nothing_is_ever_stored(
    edge: EdgeApp,
    redis: aioredis.Redis,
    forged: tuple[bytes, bytes | None, list[tuple[bytes, bytes]], list[bytes]],
) -> None:
    body, length, headers, chunks = forged

    reply = await request(edge, headers, chunks)
    event(f"status {reply.status}")  # the spread shows with --hypothesis-show-statistics

    if declared_over_limit(length) or len(body) > MAX_BODY:
        assert reply.status == 413, reply
    else:
        assert reply.status == 401, reply
        assert reply.body == b'{"error":"invalid_signature"}'  # the same answer whatever was wrong
    assert not await stored_anything(redis)


@given(hs.signed_requests())
async def test_a_validly_signed_body_is_stored_or_refused_4xx_never_5xx(
    edge: EdgeApp, redis: aioredis.Redis, signed: tuple[bytes, list[tuple[bytes, bytes]], list[bytes]]
) -> None:
    body, headers, chunks = signed
    before = await redis.xlen(EVENTS_STREAM)

    reply = await request(edge, headers, chunks)
    event(f"status {reply.status}")

    if len(body) > MAX_BODY:
        assert reply.status == 413, reply
        assert await redis.xlen(EVENTS_STREAM) == before
        return
    assert reply.status in (200, 202, 400, 422), (reply, body[:300])
    if reply.status in (200, 202):
        answer = json.loads(reply.body)
        assert answer["status"] == ("queued" if reply.status == 202 else "duplicate")
        [(_, fields)] = await redis.xrange(EVENTS_STREAM, answer["id"], answer["id"])
        if reply.status == 202:
            assert fields[F_BODY.encode()] == body
            assert await redis.xlen(EVENTS_STREAM) == before + 1
        else:
            assert await redis.xlen(EVENTS_STREAM) == before
        return

    assert_json_error(reply)
    assert await redis.xlen(EVENTS_STREAM) == before
    try:
        oracle = json.loads(body)
    except RecursionError:  # nested deeper than the standard library goes: it cannot tell
        return
    except ValueError:  # not UTF-8 or not JSON for the standard library either
        assert reply.status == 400, reply
        return
    if not isinstance(oracle, dict):
        assert reply.status == 400, reply
    elif reply.status == 422:
        # Only a known type, or an object without a string "event", can have invalid fields:
        # an unknown type is stored as it is.
        name = oracle.get("event")
        assert not isinstance(name, str) or name in MODELS, (name, reply)


@given(body=hs.bodies)
async def test_fuzzing_leaves_the_edge_able_to_store(
    edge: EdgeApp, redis: aioredis.Redis, body: bytes
) -> None:
    """Signed and unsigned, one after the other on one edge: no example poisons a later one."""
    signed = await request(edge, [(hs.SIGNATURE, hs.hex_signature(body).encode())], [body])
    forged = await request(edge, [(hs.SIGNATURE, hs.hex_signature(body, "x").encode())], [body])

    too_large = len(body) > MAX_BODY
    assert signed.status in ((413,) if too_large else (200, 202, 400, 422))
    assert forged.status == (413 if too_large else 401)
    await still_stores_a_valid_event(edge)
