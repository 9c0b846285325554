"""``relay rejected`` after real refusals by a real edge: what was refused, why, and never a secret."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from relay.core.keys import REJECTED_COUNT, REJECTED_STREAM
from tests.cli.cli_support import cli_env, hmac_hex, invoke
from tests.conftest import PREVIOUS_SECRET, SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.usefixtures(cli_env.__name__)

VOTE = b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"258317078560243712"}'


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    with running_edge(make_settings(shared_redis.url)) as url:
        yield url + "/webhook"


def recorded(client: redis.Redis, count: int, within: float = 10.0) -> None:
    """The edge records after answering: wait (bounded) until `count` records are there."""
    deadline = time.monotonic() + within
    while client.xlen(REJECTED_STREAM) < count:
        assert time.monotonic() < deadline, "the refusal was not recorded"
        time.sleep(0.01)


def test_a_wrong_secret_is_shown_without_any_secret(edge_url: str, client: redis.Redis) -> None:
    forged = hmac_hex(VOTE, "a-guessed-secret")
    response = httpx.post(
        edge_url,
        content=VOTE,
        headers={"X-Sphere-Signature": forged, "Authorization": f"Bearer {SECRET}"},
    )
    assert response.status_code == 401
    recorded(client, 1)

    result = invoke(["rejected"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("1 request(s) refused in all, 1 recorded")
    assert "401 invalid_signature  (signed with another secret?" in result.output
    assert "from 127.0.0.1:" in result.output
    assert f"x-sphere-signature: {forged[:12]}… (64 chars)" in result.output
    assert "authorization" not in result.output
    assert f"body: {VOTE.decode()}" in result.output
    for secret in (SECRET, PREVIOUS_SECRET, forged, "Bearer"):
        assert secret not in result.output


def test_json_lists_the_newest_first_with_totals(edge_url: str, client: redis.Redis) -> None:
    bad_json = b'{"event": "VOTE_ADD",'
    invalid = b'{"event":"REVIEW_ADD","guild_id":"1","user_id":"2"}'
    for body in (bad_json, invalid):
        assert httpx.post(
            edge_url, content=body, headers={"X-Sphere-Signature": hmac_hex(body, SECRET)}
        ).status_code in (400, 422)
    recorded(client, 2)

    result = invoke(["rejected", "--json", "--limit", "5"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["refused"], document["recorded"]) == (2, 2)
    assert [(r["status"], r["reason"]) for r in document["latest"]] == [
        (422, "invalid_event"),
        (400, "invalid_body"),
    ]
    assert document["latest"][1]["body_head"] == bad_json.decode()
    assert document["latest"][0]["size"] == len(invalid)


def test_an_oversized_body_keeps_only_its_head(edge_url: str, client: redis.Redis) -> None:
    body = b'{"pad":"' + b"x" * 70_000 + b'"}'
    assert httpx.post(edge_url, content=body).status_code == 413
    recorded(client, 1)

    [rejection] = json.loads(invoke(["rejected", "--json"]).output)["latest"]

    assert (rejection["status"], rejection["reason"]) == (413, "body_too_large")
    assert ["content-length", str(len(body))] in rejection["headers"]
    assert len(rejection["body_head"]) <= 256


def test_nothing_refused_yet(client: redis.Redis) -> None:
    result = invoke(["rejected"])

    assert result.exit_code == 0
    assert result.output == "0 request(s) refused in all, 0 recorded\n"
    assert not client.exists(REJECTED_COUNT)
