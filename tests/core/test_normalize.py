"""The normalized `Vote` and `Review`: every sender's events map to them (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from relay.core.events import Event, Review, Vote, VoteAdd, normalize, parse
from relay.core.senders import parse_stored, qualified, split, types_of
from relay.core.senders.topgg import TopggLegacyVote, TopggTest, TopggVote
from tests.support.senders import BOT, GUILD, USER, topgg_legacy, topgg_test, topgg_vote

# Shaped as top.gg's developer docs show them (webhooks/events.mdx), with distinct voter and target ids.
TOPGG_VOTE = json.loads(topgg_vote())
TOPGG_TEST = json.loads(topgg_test())
TOPGG_V0 = json.loads(topgg_legacy())


def raw(data: object) -> bytes:
    return json.dumps(data).encode()


def test_a_sphere_vote_is_a_vote_for_its_guild() -> None:
    event = parse(raw({"event": "VOTE_ADD", "guild_id": GUILD, "user_id": USER}))
    vote = normalize(event)

    assert isinstance(vote, Vote)
    assert (vote.source, vote.user_id, vote.target_id, vote.target) == ("sphere", USER, GUILD, "guild")
    assert (vote.weight, vote.test, vote.expires_at) == (1, False, None)
    assert vote.payload is event


def test_a_sphere_review_is_a_review_with_its_stars_and_time() -> None:
    body = {
        "event": "REVIEW_ADD",
        "guild_id": GUILD,
        "user_id": USER,
        "review": {
            "id": "42",
            "published_timestamp": 1604839992654,
            "stars": 4,
            "content": {"title": "Nice", "description": "Good server"},
        },
    }
    review = normalize(parse(raw(body)))

    assert isinstance(review, Review)
    assert (review.stars, review.title, review.text, review.id) == (4, "Nice", "Good server", "42")
    assert review.created_at == datetime(2020, 11, 8, 12, 53, 12, 654000, tzinfo=UTC)


def test_an_unknown_sphere_type_has_no_normalized_form() -> None:
    assert normalize(parse(raw({"event": "GUILD_UPDATE"}))) is None


def test_a_topgg_v1_vote_carries_weight_expiry_and_its_id() -> None:
    event = parse_stored("topgg:vote.create", topgg_vote(weight=2))
    vote = normalize(event)

    assert isinstance(event, TopggVote) and isinstance(vote, Vote)
    assert (vote.source, vote.user_id, vote.target_id, vote.target) == (
        "topgg", USER, BOT, "bot",
    )  # fmt: skip
    assert (vote.weight, vote.test, vote.id) == (2, False, "808499215864008704")
    assert vote.expires_at is not None and vote.created_at is not None
    assert (vote.expires_at - vote.created_at).total_seconds() == 12 * 3600


def test_a_topgg_dashboard_test_is_a_test_vote() -> None:
    vote = normalize(parse_stored("topgg:webhook.test", raw(TOPGG_TEST)))

    assert isinstance(vote, Vote) and isinstance(vote.payload, TopggTest)
    assert vote.test is True
    assert vote.id is None


@pytest.mark.parametrize(
    ("body", "target", "weight", "test"),
    [
        (TOPGG_V0, "bot", 1, False),
        ({**TOPGG_V0, "isWeekend": True}, "bot", 2, False),
        ({"guild": GUILD, "user": USER, "type": "test", "query": "?a=1"}, "guild", 1, True),
    ],
)
def test_a_topgg_v0_delivery_is_a_vote(body: dict[str, object], target: str, weight: int, test: bool) -> None:
    event = parse_stored(qualified("topgg", str(body["type"])), raw(body))
    vote = normalize(event)

    assert isinstance(event, TopggLegacyVote) and isinstance(vote, Vote)
    assert (vote.target, vote.weight, vote.test, vote.user_id) == (target, weight, test, body["user"])


def test_a_standard_vote_and_review_map_their_data() -> None:
    vote = normalize(
        parse_stored(
            "standard:vote.create",
            raw(
                {
                    "type": "vote.create",
                    "data": {"user_id": USER, "target_id": GUILD, "test": True, "extra": 1},
                }
            ),
        )
    )
    review = normalize(
        parse_stored(
            "standard:review.create",
            raw({"type": "review.create", "data": {"user_id": USER, "target_id": GUILD, "stars": 5}}),
        )
    )

    assert isinstance(vote, Vote) and (vote.source, vote.test, vote.weight) == ("standard", True, 1)
    assert isinstance(review, Review) and (review.source, review.stars) == ("standard", 5)


def test_stored_types_name_their_sender_and_sphere_stays_bare() -> None:
    assert qualified("sphere", "VOTE_ADD") == "VOTE_ADD"
    assert qualified("topgg", "test") == "topgg:test"
    assert split("topgg:vote.create") == ("topgg", "vote.create")
    assert split("VOTE_ADD") == ("sphere", "VOTE_ADD")
    assert split("nobody:x") == ("sphere", "nobody:x")


def test_vote_stands_for_every_senders_vote_types() -> None:
    assert set(types_of(Vote)) == {
        "VOTE_ADD", "topgg:vote.create", "topgg:webhook.test", "topgg:upvote", "topgg:test", "standard:vote.create",
    }  # fmt: skip
    assert set(types_of(Review)) == {"REVIEW_ADD", "standard:review.create"}
    assert types_of(VoteAdd) == ("VOTE_ADD",)
    assert types_of(TopggLegacyVote) == ("topgg:upvote", "topgg:test")
    with pytest.raises(TypeError):
        types_of(Event)


def test_a_stored_type_that_disagrees_with_the_body_is_refused() -> None:
    from relay.core.events import InvalidBody

    with pytest.raises(InvalidBody):
        parse_stored("topgg:vote.create", raw(TOPGG_TEST))
