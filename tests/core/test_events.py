"""Parsing and validating Sphere's events (pure: no Redis, no server)."""

from __future__ import annotations

import hashlib
import json

import pytest

from relay.core.events import (
    Event,
    InvalidBody,
    InvalidEvent,
    ReviewAdd,
    VoteAdd,
    dedupe_key,
    load_object,
    parse,
)

VOTE = {"event": "VOTE_ADD", "guild_id": "338202622731485185", "user_id": "258317078560243712"}
REVIEW = {
    "event": "REVIEW_ADD",
    "guild_id": "338202622731485185",
    "user_id": "258317078560243712",
    "review": {
        "id": "258317078560243712",
        "published_timestamp": 1604839992654,
        "stars": 5,
        "content": {"title": "Lorem Ipsum", "description": "Lorem Ipsum is simply dummy text"},
    },
}


def raw(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def with_review(**changes: object) -> dict[str, object]:
    review = {**REVIEW["review"], **changes}  # type: ignore[dict-item]
    return {**REVIEW, "review": review}


def test_the_guides_vote_sample_parses() -> None:
    event = parse(raw(VOTE))

    assert isinstance(event, VoteAdd)
    assert (event.guild_id, event.user_id) == (VOTE["guild_id"], VOTE["user_id"])


def test_the_guides_review_sample_parses() -> None:
    event = parse(raw(REVIEW))

    assert isinstance(event, ReviewAdd)
    assert event.review.stars == 5
    assert event.review.published_timestamp == 1604839992654
    assert event.review.content.title == "Lorem Ipsum"


def test_cyrillic_and_emoji_text_survives() -> None:
    body = raw(with_review(content={"title": "Супер 🚀", "description": "Лучший сервер 😊"}))
    event = parse(body)

    assert isinstance(event, ReviewAdd)
    assert event.review.content.title == "Супер 🚀"


def test_unknown_extra_fields_are_kept_at_every_level() -> None:
    data = {**with_review(helpful=3), "locale": "ru"}
    event = parse(raw(data))

    assert isinstance(event, ReviewAdd)
    assert event.model_extra == {"locale": "ru"}
    assert event.review.model_extra == {"helpful": 3}


def test_an_unknown_type_is_a_plain_event_with_its_fields() -> None:
    event = parse(b'{"event":"GUILD_BOOST","level":2}')

    assert type(event) is Event
    assert event.event == "GUILD_BOOST"
    assert event.model_extra == {"level": 2}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"nope",
        b"[]",
        b"1",
        b'"x"',
        b"null",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"\xff",
        b'{"event": "\\ud800"}',  # a lone surrogate could not be stored as UTF-8
        b"[" * 100000,
    ],
)
def test_anything_but_a_json_object_is_invalid_body(body: bytes) -> None:
    with pytest.raises(InvalidBody):
        load_object(body)


def test_a_number_too_long_to_convert_is_invalid_body() -> None:
    with pytest.raises(InvalidBody):
        parse(b'{"event":"X","n":' + b"9" * 5000 + b"}")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**VOTE, "user_id": 258317078560243712}, "user_id"),  # a number, not a string of digits
        ({**VOTE, "guild_id": "12ab"}, "guild_id"),
        ({**VOTE, "guild_id": "1" * 21}, "guild_id"),
        ({k: v for k, v in VOTE.items() if k != "user_id"}, "user_id"),
        (with_review(stars=0), "review.stars"),
        (with_review(stars=6), "review.stars"),
        (with_review(stars="5"), "review.stars"),
        (with_review(stars=4.0), "review.stars"),
        (with_review(published_timestamp="1604839992654"), "review.published_timestamp"),
        (with_review(content={"title": "t"}), "review.content.description"),
        ({k: v for k, v in REVIEW.items() if k != "review"}, "review"),
        ({"guild_id": "1"}, "event"),
        ({"event": 7}, "event"),
    ],
)
def test_invalid_fields_are_named(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse(raw(data))

    assert field in [f["field"] for f in caught.value.fields]


def test_invalid_event_never_echoes_the_input() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse(raw({**VOTE, "user_id": "drop table; secret-value"}))

    assert "secret-value" not in str(caught.value)
    assert "secret-value" not in json.dumps(caught.value.fields)


def test_a_vote_is_deduplicated_by_its_exact_bytes() -> None:
    body = raw(VOTE)

    assert dedupe_key(parse(body), body) == f"sha256:{hashlib.sha256(body).hexdigest()}"
    spaced = json.dumps(VOTE, indent=1).encode()
    assert dedupe_key(parse(spaced), spaced) != dedupe_key(parse(body), body)


def test_a_review_is_deduplicated_by_its_id() -> None:
    body = raw(REVIEW)
    other_bytes = json.dumps(REVIEW, indent=2).encode()

    assert dedupe_key(parse(body), body) == "review:258317078560243712"
    assert dedupe_key(parse(other_bytes), other_bytes) == "review:258317078560243712"


def test_an_unknown_type_is_deduplicated_by_its_bytes() -> None:
    body = b'{"event":"REVIEW_DELETE","review":{"id":"1"}}'

    assert dedupe_key(parse(body), body).startswith("sha256:")
