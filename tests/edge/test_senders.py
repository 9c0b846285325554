"""``POST /webhook/topgg`` and ``POST /webhook/standard`` over real HTTP (uvicorn) against a real Redis:
signed as the senders sign (tests/support/senders.py computes it independently), deduplicated per
sender, refused with 401 and a recorded reason, and 404 while a sender is off."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from relay.core.keys import EVENTS_STREAM, F_SOURCE, F_TYPE
from relay.edge.rejections import recent
from tests.conftest import make_settings
from tests.edge.test_webhook import VOTE, signed
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer
from tests.support.senders import (
    SENDER_SETTINGS,
    STANDARD_PREVIOUS,
    TOPGG_AUTHORIZATION,
    TOPGG_PREVIOUS,
    TOPGG_SECRET,
    standard_signed,
    standard_vote,
    topgg_legacy,
    topgg_signed,
    topgg_test,
    topgg_vote,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    with running_edge(make_settings(shared_redis.url, **SENDER_SETTINGS)) as url:
        yield url


@pytest.fixture
async def client(edge_url: str, redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge_url, timeout=10) as http:
        yield http


async def stored(redis: aioredis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in await redis.xrange(EVENTS_STREAM)]


async def rejections(redis: aioredis.Redis, count: int = 1) -> list[str]:
    for _ in range(200):  # recorded after the answer, in the background
        found = await recent(redis, 10)
        if len(found) >= count:
            return [f"{r.source} {r.status} {r.reason}" for r in found]
        await asyncio.sleep(0.01)
    raise AssertionError("the refusal was not recorded")


async def test_a_topgg_v1_vote_is_queued_with_its_source(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = topgg_vote()
    answer = await client.post("/webhook/topgg", content=body, headers=topgg_signed(body))

    assert answer.status_code == 202, answer.text
    [fields] = await stored(redis)
    assert fields[F_TYPE.encode()] == b"topgg:vote.create"
    assert fields[F_SOURCE.encode()] == b"topgg"
    assert fields[b"body"] == body


async def test_a_previous_topgg_secret_and_v0_authorization_are_accepted(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    first = await client.post(
        "/webhook/topgg", content=topgg_test(), headers=topgg_signed(topgg_test(), TOPGG_PREVIOUS)
    )
    legacy = topgg_legacy(weekend=True)
    second = await client.post(
        "/webhook/topgg", content=legacy, headers={"Authorization": TOPGG_AUTHORIZATION}
    )

    assert (first.status_code, second.status_code) == (202, 202)
    assert [f[F_TYPE.encode()] for f in await stored(redis)] == [b"topgg:webhook.test", b"topgg:upvote"]


async def test_a_topgg_redelivery_is_one_event_even_with_other_bytes(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = topgg_vote()
    first = await client.post("/webhook/topgg", content=body, headers=topgg_signed(body))
    again = body.replace(b'"query": {}', b'"query": {"ref": "x"}')
    second = await client.post(
        "/webhook/topgg", content=again, headers=topgg_signed(again, at=time.time() - 2)
    )

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json() == {"status": "duplicate", "id": first.json()["id"]}
    assert len(await stored(redis)) == 1


async def test_a_standard_vote_is_queued_and_deduplicated_on_its_id(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = standard_vote()
    first = await client.post("/webhook/standard", content=body, headers=standard_signed(body, "msg_a"))
    other_bytes = standard_vote() + b" "
    again = await client.post(
        "/webhook/standard",
        content=other_bytes,
        headers=standard_signed(other_bytes, "msg_a", STANDARD_PREVIOUS),
    )
    new_id = await client.post("/webhook/standard", content=body, headers=standard_signed(body, "msg_b"))

    assert (first.status_code, again.status_code, new_id.status_code) == (202, 200, 202)
    assert [(f[F_TYPE.encode()], f[F_SOURCE.encode()]) for f in await stored(redis)] == [
        (b"standard:vote.create", b"standard"),
        (b"standard:vote.create", b"standard"),
    ]


async def test_the_same_id_from_two_senders_is_two_events(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    # A top.gg vote id used as a Standard Webhooks message id, and the same body as a Sphere vote's.
    topgg = topgg_vote(vote_id="4242")
    standard = standard_vote()
    answers = [
        await client.post("/webhook/topgg", content=topgg, headers=topgg_signed(topgg)),
        await client.post("/webhook/standard", content=standard, headers=standard_signed(standard, "4242")),
        await client.post("/webhook", content=VOTE, headers=signed(VOTE)),
        await client.post(
            "/webhook/topgg", content=topgg_legacy(), headers={"Authorization": TOPGG_AUTHORIZATION}
        ),
    ]

    assert [a.status_code for a in answers] == [202, 202, 202, 202]
    entries = await stored(redis)
    assert [f.get(F_SOURCE.encode()) for f in entries] == [b"topgg", b"standard", None, b"topgg"]
    assert {f[b"dedupe"] for f in entries} == {
        b"topgg:vote:4242",
        b"standard:id:4242",
        entries[2][b"dedupe"],
        entries[3][b"dedupe"],
    }
    assert entries[3][b"dedupe"].startswith(b"topgg:sha256:")


# Headers are built when the test runs, not when it is collected: a suite collected minutes earlier
# would otherwise send a "future" timestamp that has since come within the tolerance.
Headers = Callable[[], dict[str, str]]


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/webhook/topgg", dict, "missing x-topgg-signature"),
        ("/webhook/topgg", lambda: {"x-topgg-signature": "t=1,v1=00"}, "stale timestamp"),
        ("/webhook/topgg", lambda: topgg_signed(topgg_vote(), at=time.time() + 3600), "future timestamp"),
        ("/webhook/topgg", lambda: topgg_signed(topgg_vote(), at=time.time() - 301), "stale timestamp"),
        ("/webhook/topgg", lambda: topgg_signed(b"other body"), "wrong v1 signature"),
        ("/webhook/topgg", lambda: {"Authorization": "not-the-authorization"}, "wrong v0 authorization"),
        ("/webhook/standard", dict, "missing webhook-id, webhook-timestamp, webhook-signature header"),
        (
            "/webhook/standard",
            lambda: standard_signed(standard_vote(), at=time.time() - 400),
            "stale timestamp",
        ),
        (
            "/webhook/standard",
            lambda: standard_signed(standard_vote(), at=time.time() + 400),
            "future timestamp",
        ),
        ("/webhook/standard", lambda: standard_signed(b"{}"), "wrong signature"),
    ],
)
async def test_a_refusal_is_401_and_recorded_with_its_reason_and_source(
    client: httpx.AsyncClient, redis: aioredis.Redis, path: str, headers: Headers, reason: str
) -> None:
    body = topgg_vote() if "topgg" in path else standard_vote()
    answer = await client.post(path, content=body, headers=headers())

    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_signature"}  # the same for every cause
    assert await stored(redis) == []
    [record] = await rejections(redis)
    source = path.rsplit("/", 1)[1]
    assert record.startswith(f"{source} 401 invalid_signature: {reason}")
    assert TOPGG_SECRET not in record and TOPGG_AUTHORIZATION not in record


async def test_a_signed_body_that_is_not_an_event_is_400_or_422(client: httpx.AsyncClient) -> None:
    not_json = b"nope"
    bad_vote = topgg_vote(user="not-a-snowflake")

    assert (
        await client.post("/webhook/topgg", content=not_json, headers=topgg_signed(not_json))
    ).status_code == 400
    assert (
        await client.post("/webhook/topgg", content=bad_vote, headers=topgg_signed(bad_vote))
    ).status_code == 422


async def test_a_repeated_signature_header_is_refused(client: httpx.AsyncClient) -> None:
    body = topgg_vote()
    good = topgg_signed(body)["x-topgg-signature"]
    answer = await client.post(
        "/webhook/topgg", content=body, headers=[("x-topgg-signature", good), ("x-topgg-signature", good)]
    )

    assert answer.status_code == 401


async def test_other_methods_on_a_sender_route_are_405(client: httpx.AsyncClient) -> None:
    assert (await client.get("/webhook/topgg")).status_code == 405


def test_a_sender_without_a_secret_has_no_route(shared_redis: RedisServer) -> None:
    body = topgg_vote()
    with running_edge(make_settings(shared_redis.url)) as url:
        topgg = httpx.post(f"{url}/webhook/topgg", content=body, headers=topgg_signed(body))
        standard = httpx.post(
            f"{url}/webhook/standard", content=standard_vote(), headers=standard_signed(standard_vote())
        )
    assert (topgg.status_code, standard.status_code) == (404, 404)


def test_sphere_without_its_secret_has_no_route(shared_redis: RedisServer) -> None:
    settings = make_settings(shared_redis.url, secret=None, previous_secrets=[], topgg_secret=TOPGG_SECRET)
    body = topgg_vote()
    with running_edge(settings) as url:
        sphere = httpx.post(f"{url}/webhook", content=VOTE, headers=signed(VOTE))
        topgg = httpx.post(f"{url}/webhook/topgg", content=body, headers=topgg_signed(body))
    assert (sphere.status_code, topgg.status_code) == (404, 202)


def test_metrics_count_each_senders_requests(redis_url: str) -> None:
    vote = topgg_vote()
    with running_edge(make_settings(redis_url, **SENDER_SETTINGS)) as url:
        httpx.post(f"{url}/webhook/topgg", content=vote, headers=topgg_signed(vote))
        httpx.post(f"{url}/webhook/topgg", content=vote, headers=topgg_signed(b"x"))
        httpx.post(f"{url}/webhook", content=VOTE, headers=signed(VOTE))
        httpx.post(f"{url}/webhook", content=VOTE, headers={"X-Sphere-Signature": "0" * 64})
        text = httpx.get(f"{url}/metrics").text

    counts = {
        (sample.labels["source"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "relay_webhook_source_requests_total"
    }

    assert counts[("topgg", "queued")] == counts[("topgg", "invalid_signature")] == 1
    assert counts[("sphere", "queued")] == counts[("sphere", "invalid_signature")] == 1
    assert counts[("standard", "queued")] == 0
    assert 'relay_webhook_requests_total{outcome="invalid_signature"} 2.0' in text  # the totals stay whole


def test_openapi_documents_only_the_routes_that_are_on(redis_url: str) -> None:
    settings = make_settings(
        redis_url, openapi=True, secret=None, previous_secrets=[], topgg_secret=TOPGG_SECRET
    )
    with running_edge(settings) as url:
        schema = httpx.get(f"{url}/openapi.json").json()

    operation = schema["paths"]["/webhook/topgg"]["post"]
    assert {p["name"] for p in operation["parameters"]} == {"x-topgg-signature", "authorization"}
    assert {"200", "202", "401", "422", "503"} <= set(operation["responses"])
    assert {"TopggVote", "TopggTest", "TopggLegacyVote", "TopggEvent"} <= set(schema["components"]["schemas"])
    assert "/webhook" not in schema["paths"] and "/webhook/standard" not in schema["paths"]
