"""``POST /webhook`` over real HTTP (uvicorn + httptools) against a real Redis: every row of the
edge issue's answer table. Signatures are computed here with hmac, independently of relay.edge.signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from relay.core.keys import EVENTS_STREAM, F_BODY, F_DEDUPE, F_RECEIVED, F_TYPE, dedupe_redis_key
from tests.conftest import PREVIOUS_SECRET, SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.anyio

VOTE = b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"258317078560243712"}'


def review(review_id: str = "911", stars: int = 5, title: str = "Good", description: str = "Fine") -> bytes:
    return json.dumps(
        {
            "event": "REVIEW_ADD",
            "guild_id": "338202622731485185",
            "user_id": "258317078560243712",
            "review": {
                "id": review_id,
                "published_timestamp": 1604839992654,
                "stars": stars,
                "content": {"title": title, "description": description},
            },
        },
        ensure_ascii=False,
    ).encode()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Sphere-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    """One edge for the module; `redis` (via `redis_url`) empties Redis before each test."""
    with running_edge(make_settings(shared_redis.url)) as url:
        yield url


@pytest.fixture
async def client(edge_url: str, redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge_url, timeout=10) as http:
        yield http


async def entries(redis: aioredis.Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    result: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(EVENTS_STREAM)
    return result


# -- 202 / 2xx ---------------------------------------------------------------------------------


async def test_new_event_is_queued_with_its_raw_body(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    before_ms = int(time.time() * 1000)
    response = await client.post("/webhook", content=VOTE, headers=signed(VOTE))
    after_ms = int(time.time() * 1000)

    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["status"] == "queued"
    [(entry_id, fields)] = await entries(redis)
    assert answer["id"] == entry_id.decode()
    assert fields[F_TYPE.encode()] == b"VOTE_ADD"
    assert fields[F_BODY.encode()] == VOTE
    assert before_ms <= int(fields[F_RECEIVED.encode()]) <= after_ms
    assert fields[F_DEDUPE.encode()] == f"sha256:{hashlib.sha256(VOTE).hexdigest()}".encode()


async def test_redelivery_within_the_window_returns_the_original_id(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    first = await client.post("/webhook", content=VOTE, headers=signed(VOTE))
    again = await client.post("/webhook", content=VOTE, headers=signed(VOTE))

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "id": first.json()["id"]}
    assert await redis.xlen(EVENTS_STREAM) == 1


async def test_dedupe_key_is_held_for_the_window(client: httpx.AsyncClient, redis: aioredis.Redis) -> None:
    response = await client.post("/webhook", content=VOTE, headers=signed(VOTE))

    key = dedupe_redis_key(f"sha256:{hashlib.sha256(VOTE).hexdigest()}")
    assert await redis.get(key) == response.json()["id"].encode()
    assert 0 < await redis.ttl(key) <= make_settings("redis://unused").dedupe_seconds


async def test_a_review_is_deduplicated_by_its_id_even_if_reserialized(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = review("4242")
    reserialized = json.dumps(json.loads(body), indent=2).encode()

    first = await client.post("/webhook", content=body, headers=signed(body))
    again = await client.post("/webhook", content=reserialized, headers=signed(reserialized))

    assert first.status_code == 202
    assert again.json() == {"status": "duplicate", "id": first.json()["id"]}
    [(_, fields)] = await entries(redis)
    assert fields[F_DEDUPE.encode()] == b"review:4242"


async def test_a_different_vote_is_a_new_entry(client: httpx.AsyncClient, redis: aioredis.Redis) -> None:
    other = VOTE.replace(b"258317078560243712", b"1")
    await client.post("/webhook", content=VOTE, headers=signed(VOTE))
    response = await client.post("/webhook", content=other, headers=signed(other))

    assert response.status_code == 202
    assert await redis.xlen(EVENTS_STREAM) == 2


async def test_cyrillic_and_emoji_review_is_stored_byte_exact(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = review(title="Отличный сервер 🎉", description="Всё работает 👍🏽, спасибо!\nЁё — «кавычки»")
    assert "Отличный".encode() in body  # raw UTF-8, not \u escapes

    response = await client.post("/webhook", content=body, headers=signed(body))

    assert response.status_code == 202
    [(_, fields)] = await entries(redis)
    assert fields[F_BODY.encode()] == body


async def test_an_unknown_event_type_is_stored_as_is(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = b'{"event":"GUILD_BOOST","guild_id":"1","level":3}'
    response = await client.post("/webhook", content=body, headers=signed(body))

    assert response.status_code == 202
    [(_, fields)] = await entries(redis)
    assert fields[F_TYPE.encode()] == b"GUILD_BOOST"
    assert fields[F_BODY.encode()] == body


async def test_unknown_extra_fields_are_kept(client: httpx.AsyncClient, redis: aioredis.Redis) -> None:
    body = VOTE[:-1] + b',"weekend":true,"source":{"kind":"bot"}}'
    response = await client.post("/webhook", content=body, headers=signed(body))

    assert response.status_code == 202
    [(_, fields)] = await entries(redis)
    assert json.loads(fields[F_BODY.encode()])["source"] == {"kind": "bot"}


async def test_a_previous_secret_is_accepted_during_rotation(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    response = await client.post("/webhook", content=VOTE, headers=signed(VOTE, PREVIOUS_SECRET))

    assert response.status_code == 202
    assert await redis.xlen(EVENTS_STREAM) == 1


@pytest.mark.parametrize(
    "header",
    [
        lambda digest: digest.upper(),
        lambda digest: f"sha256={digest}",
        lambda digest: f"SHA256={digest.upper()}",
    ],
    ids=["uppercase", "prefixed", "prefixed-uppercase"],
)
async def test_signature_spellings_sphere_may_use(client: httpx.AsyncClient, header: object) -> None:
    digest = signed(VOTE)["X-Sphere-Signature"]
    assert callable(header)
    response = await client.post("/webhook", content=VOTE, headers={"X-Sphere-Signature": header(digest)})

    assert response.status_code == 202


# -- 401 ---------------------------------------------------------------------------------------

FORGERIES: dict[str, list[tuple[str, str]]] = {
    "missing": [],
    "empty": [("X-Sphere-Signature", "")],
    "not hex": [("X-Sphere-Signature", "z" * 64)],
    "too short": [("X-Sphere-Signature", signed(VOTE)["X-Sphere-Signature"][:-2])],
    "wrong secret": [("X-Sphere-Signature", signed(VOTE, "not-the-secret")["X-Sphere-Signature"])],
    "other body": [("X-Sphere-Signature", signed(VOTE + b" ")["X-Sphere-Signature"])],
    "two headers": [("X-Sphere-Signature", signed(VOTE)["X-Sphere-Signature"])] * 2,
}


async def test_every_signature_failure_gets_the_same_401_and_stores_nothing(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    answers = {}
    for cause, headers in FORGERIES.items():
        response = await client.post("/webhook", content=VOTE, headers=headers)
        assert response.status_code == 401, cause
        answers[cause] = (response.content, response.headers["content-type"])

    assert len(set(answers.values())) == 1, answers
    assert json.loads(next(iter(answers.values()))[0]) == {"error": "invalid_signature"}
    assert await redis.xlen(EVENTS_STREAM) == 0


async def test_signature_is_checked_before_the_body_is_parsed(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhook", content=b"not json", headers={"X-Sphere-Signature": "0" * 64})

    assert response.status_code == 401


# -- 400 / 422 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"VOTE_ADD"',
        b"12",
        b"null",
        b'{"event": NaN}',
        b"\xff\xfe{}",
        b'{"event":"\\ud800"}',
        b"[" * 20000 + b"]" * 20000,
    ],
    ids=["empty", "text", "array", "string", "number", "null", "nan", "bad-utf8", "lone-surrogate", "deep"],
)
async def test_a_body_that_is_not_a_json_object_is_400(
    client: httpx.AsyncClient, redis: aioredis.Redis, body: bytes
) -> None:
    response = await client.post("/webhook", content=body, headers=signed(body))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"
    assert await redis.xlen(EVENTS_STREAM) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (review(stars=9), "review.stars"),
        (review(review_id="abc"), "review.id"),
        (b'{"event":"VOTE_ADD","guild_id":"1"}', "user_id"),
        (b'{"event":"VOTE_ADD","guild_id":1,"user_id":"2"}', "guild_id"),
        (b'{"guild_id":"1","user_id":"2"}', "event"),
    ],
)
async def test_invalid_fields_of_a_known_event_are_422_naming_the_field(
    client: httpx.AsyncClient, redis: aioredis.Redis, body: bytes, field: str
) -> None:
    response = await client.post("/webhook", content=body, headers=signed(body))

    assert response.status_code == 422
    answer = response.json()
    assert answer["error"] == "invalid_event"
    assert field in [item["field"] for item in answer["detail"]]
    assert await redis.xlen(EVENTS_STREAM) == 0


async def test_a_422_echoes_neither_the_input_nor_the_secret(client: httpx.AsyncClient) -> None:
    marker = "<script>leak-me</script>"
    body = json.dumps({"event": "VOTE_ADD", "guild_id": marker, "user_id": "2"}).encode()

    response = await client.post("/webhook", content=body, headers=signed(body))

    assert response.status_code == 422
    assert "leak-me" not in response.text
    assert SECRET not in response.text


# -- 405 / 404 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_on_the_webhook_are_405(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/webhook", content=VOTE, headers=signed(VOTE))

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"] == "method_not_allowed"


async def test_an_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks", content=VOTE, headers=signed(VOTE))

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# -- concurrency -------------------------------------------------------------------------------


async def test_concurrent_identical_deliveries_make_exactly_one_entry(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    async with httpx.AsyncClient(
        base_url=str(client.base_url), limits=httpx.Limits(max_connections=50)
    ) as http:
        responses = await asyncio.gather(
            *(http.post("/webhook", content=VOTE, headers=signed(VOTE)) for _ in range(50))
        )

    assert all(r.status_code in (200, 202) for r in responses), [r.status_code for r in responses]
    assert [r.status_code for r in responses].count(202) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    [(entry_id, _)] = await entries(redis)
    assert responses[0].json()["id"] == entry_id.decode()


async def test_concurrent_distinct_deliveries_each_get_their_own_entry(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    bodies = [review(review_id=str(n)) for n in range(60)]
    async with httpx.AsyncClient(
        base_url=str(client.base_url), limits=httpx.Limits(max_connections=30)
    ) as http:
        responses = await asyncio.gather(
            *(http.post("/webhook", content=b, headers=signed(b)) for b in bodies)
        )

    assert [r.status_code for r in responses] == [202] * len(bodies)
    stored = {entry_id.decode(): fields[F_BODY.encode()] for entry_id, fields in await entries(redis)}
    assert {r.json()["id"]: b for r, b in zip(responses, bodies, strict=True)} == stored


# -- 503 ---------------------------------------------------------------------------------------


async def test_redis_unreachable_is_503_with_retry_after() -> None:
    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.5)
    with running_edge(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            response = await http.post("/webhook", content=VOTE, headers=signed(VOTE))

    assert response.status_code == 503
    assert response.json() == {"error": "redis_unavailable"}
    assert int(response.headers["retry-after"]) > 0


async def test_a_key_of_the_wrong_type_in_redis_is_503_not_500(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    await redis.set(EVENTS_STREAM, "someone else's string")

    response = await client.post("/webhook", content=VOTE, headers=signed(VOTE))

    assert response.status_code == 503
    assert "retry-after" in response.headers
