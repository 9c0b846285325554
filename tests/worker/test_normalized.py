"""``@on(Vote)`` and ``@on(Review)``: one handler for every sender's votes, fed by a real edge over
HTTP, the bridge stepped once and arq drained in burst mode. Sender-specific models still work."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from relay.core.events import Review, Vote, VoteAdd
from relay.core.senders.standard import StandardReview
from relay.core.senders.topgg import TopggLegacyVote, TopggTest, TopggVote
from relay.core.settings import Settings
from tests.conftest import make_settings
from tests.edge.test_webhook import signed
from tests.support.edge_server import deliver
from tests.support.senders import (
    BOT,
    GUILD,
    SENDER_SETTINGS,
    TOPGG_AUTHORIZATION,
    USER,
    standard_signed,
    standard_vote,
    topgg_legacy,
    topgg_signed,
    topgg_test,
    topgg_vote,
)
from tests.worker.helpers import bridge_all, run_burst, vote_body
from worker import Context, Registry
from worker.bridge import Bridge
from worker.checks import check_handler
from worker.registry import event_names

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url, **SENDER_SETTINGS)


async def test_one_vote_handler_runs_for_every_senders_votes(redis: Redis, settings: Settings) -> None:
    registry = Registry()
    votes: list[Vote] = []
    sphere_only: list[object] = []
    topgg_only: list[object] = []

    @registry.on(Vote)
    async def reward(ctx: Context, vote: Vote) -> None:
        votes.append(vote)

    @registry.on(VoteAdd)
    async def sphere(ctx: Context, event: VoteAdd) -> None:
        sphere_only.append(event)

    @registry.on(TopggVote, "topgg:upvote")
    async def topgg(ctx: Context, event: TopggVote | TopggLegacyVote) -> None:
        topgg_only.append(event)

    sphere_body = vote_body()
    standard = standard_vote()
    await deliver(
        settings,
        [
            ("/webhook", sphere_body, signed(sphere_body)),
            ("/webhook/topgg", topgg_vote(weight=2), topgg_signed(topgg_vote(weight=2))),
            ("/webhook/topgg", topgg_test(), topgg_signed(topgg_test())),
            ("/webhook/topgg", topgg_legacy(), {"Authorization": TOPGG_AUTHORIZATION}),
            ("/webhook/standard", standard, standard_signed(standard)),
        ],
    )
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)

    by_source = sorted((v.source, v.test, v.weight, type(v.payload).__name__) for v in votes)
    assert by_source == [
        ("sphere", False, 1, "VoteAdd"),
        ("standard", False, 1, "StandardVote"),
        ("topgg", False, 1, "TopggLegacyVote"),
        ("topgg", False, 2, "TopggVote"),
        ("topgg", True, 1, "TopggTest"),
    ]
    assert {(v.user_id, v.target_id) for v in votes if v.source != "sphere"} == {(USER, BOT), (USER, GUILD)}
    assert [type(e) for e in sphere_only] == [VoteAdd]
    assert sorted(type(e).__name__ for e in topgg_only) == ["TopggLegacyVote", "TopggVote"]
    [test] = [v for v in votes if v.test]
    assert isinstance(test.payload, TopggTest)


async def test_a_review_handler_runs_for_every_senders_reviews(redis: Redis, settings: Settings) -> None:
    registry = Registry()
    reviews: list[Review] = []

    @registry.on(Review)
    async def thank(ctx: Context, review: Review) -> None:
        reviews.append(review)

    body = json.dumps(
        {"type": "review.create", "data": {"user_id": USER, "target_id": GUILD, "stars": 4, "title": "ok"}}
    ).encode()
    await deliver(settings, [("/webhook/standard", body, standard_signed(body, "msg_review"))])
    await bridge_all(Bridge(redis, registry, settings))
    await run_burst(settings, registry)

    [review] = reviews
    assert (review.source, review.stars, review.title) == ("standard", 4, "ok")
    assert isinstance(review.payload, StandardReview)


def test_vote_and_review_stand_for_every_senders_types() -> None:
    assert set(event_names(Vote)) >= {"VOTE_ADD", "topgg:vote.create", "topgg:upvote", "standard:vote.create"}
    assert set(event_names(Review)) == {"REVIEW_ADD", "standard:review.create"}
    assert event_names(TopggTest) == ("topgg:webhook.test",)


def test_a_misspelt_sender_type_is_refused_listing_that_senders_types() -> None:
    registry = Registry()

    @registry.on("topgg:vote.created")
    async def typo(ctx: Context, event: object) -> None:
        pass

    [problem] = check_handler(next(iter(registry)))
    assert "unknown event type 'topgg:vote.created'" in problem
    assert "topgg:vote.create, topgg:webhook.test" in problem
    assert "VOTE_ADD" not in problem
