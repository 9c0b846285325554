"""``relay send --source topgg|standard`` against a real edge with every sender on: signed as that
sender signs, accepted and stored under its type; forgeries refused; the edge's route from --url."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from relay.core.keys import EVENTS_STREAM, F_BODY, F_SOURCE, F_TYPE
from tests.cli.cli_support import cli_env, invoke
from tests.conftest import SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer
from tests.support.senders import SENDER_SETTINGS, STANDARD_SECRET, TOPGG_AUTHORIZATION, TOPGG_SECRET

pytestmark = pytest.mark.usefixtures(cli_env.__name__)


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    with running_edge(make_settings(shared_redis.url, **SENDER_SETTINGS)) as url:
        yield url + "/webhook"


def entries(client: redis.Redis) -> dict[str, dict[bytes, bytes]]:
    return {entry_id.decode(): fields for entry_id, fields in client.xrange(EVENTS_STREAM)}


@pytest.mark.parametrize(
    ("variable", "secret", "args", "stored_type"),
    [
        ("RELAY_TOPGG_SECRET", TOPGG_SECRET, ["--source", "topgg"], b"topgg:vote.create"),
        ("RELAY_TOPGG_SECRET", TOPGG_SECRET, ["--source", "topgg", "--test"], b"topgg:webhook.test"),
        ("RELAY_TOPGG_AUTHORIZATION", TOPGG_AUTHORIZATION, ["--source", "topgg"], b"topgg:upvote"),
        (
            "RELAY_STANDARD_WEBHOOKS_SECRET",
            STANDARD_SECRET,
            ["--source", "standard"],
            b"standard:vote.create",
        ),
    ],
)
def test_a_vote_is_signed_as_its_sender_signs_and_stored(
    edge_url: str,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    secret: str,
    args: list[str],
    stored_type: bytes,
) -> None:
    monkeypatch.setenv(variable, secret)
    result = invoke(["send", "vote", "--url", edge_url, "--user", "42", *args])

    assert result.exit_code == 0, result.output
    status, outcome, entry_id = result.output.split()
    assert (status, outcome) == ("202", "queued")
    fields = entries(client)[entry_id]
    assert (fields[F_TYPE.encode()], fields[F_SOURCE.encode()]) == (stored_type, args[1].encode())
    assert b'"42"' in fields[F_BODY.encode()]


def test_a_standard_review_is_stored(
    edge_url: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_STANDARD_WEBHOOKS_SECRET", STANDARD_SECRET)
    result = invoke(["send", "review", "--url", edge_url, "--source", "standard", "--stars", "2"])

    assert result.exit_code == 0, result.output
    [fields] = entries(client).values()
    assert json.loads(fields[F_BODY.encode()])["data"]["stars"] == 2


@pytest.mark.parametrize("source", ["topgg", "standard"])
def test_a_forgery_in_the_senders_form_is_refused_with_401(
    edge_url: str, client: redis.Redis, source: str
) -> None:
    result = invoke(["send", "vote", "--url", edge_url, "--source", source, "--bad-signature"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("401 invalid_signature")
    assert entries(client) == {}


def test_without_the_senders_secret_nothing_is_sent(edge_url: str) -> None:
    result = invoke(["send", "vote", "--url", edge_url, "--source", "standard"])

    assert result.exit_code == 2
    assert "RELAY_STANDARD_WEBHOOKS_SECRET" in result.output


def test_a_weak_topgg_secret_is_refused_naming_the_flag(edge_url: str) -> None:
    result = invoke(
        ["send", "vote", "--url", edge_url, "--source", "topgg", "--secret", "whs_changeme_0123456789"]
    )

    assert result.exit_code == 2
    assert "--secret is a placeholder" in result.output
    assert "changeme_0123" not in result.output


def test_top_gg_sends_no_reviews() -> None:
    result = invoke(["send", "review", "--source", "topgg"])

    assert result.exit_code == 2
    assert "top.gg sends no reviews" in result.output


def test_stats_and_rejected_tell_the_senders_apart(
    edge_url: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_SECRET", SECRET)
    monkeypatch.setenv("RELAY_TOPGG_SECRET", TOPGG_SECRET)
    assert invoke(["send", "vote", "--url", edge_url, "--count", "2"]).exit_code == 0
    assert invoke(["send", "vote", "--url", edge_url, "--source", "topgg"]).exit_code == 0
    assert invoke(["send", "vote", "--url", edge_url, "--source", "topgg", "--bad-signature"]).exit_code == 0

    stats = json.loads(invoke(["stats", "--json"]).output)
    assert [(s["source"], s["recent"]) for s in stats["sources"]] == [("sphere", 2), ("topgg", 1)]
    assert "by source, in the newest 3: sphere 2 (newest " in invoke(["stats"]).output

    for _ in range(200):  # the edge records a refusal after answering
        rejected = json.loads(invoke(["rejected", "--json"]).output)
        if rejected["latest"]:
            break
        time.sleep(0.01)
    [record] = rejected["latest"]
    assert (record["source"], record["reason"]) == ("topgg", "invalid_signature: wrong v1 signature")
    text = invoke(["rejected"]).output
    assert "topgg  401 invalid_signature: wrong v1 signature  (compare RELAY_TOPGG_SECRET" in text
    assert "x-topgg-signature: t=" in text and TOPGG_SECRET not in text
