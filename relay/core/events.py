"""Sphere's events, the normalized `Vote` and `Review` every sender's events map to, and how a raw
body becomes an event.

Shared by the edge (which validates before storing) and the workers (which hand the parsed model to
handlers). Unknown fields are kept (`extra="allow"`): Sphere may add fields, and refusing them would
lose events. A validly signed event of a type we do not know is parsed as the base `Event`. The other
senders' payloads (`relay.core.senders`) derive from `Payload` too, so `normalize` takes any of them.

Errors:

    ValueError
    ├── InvalidBody   -- not JSON, or not a JSON object (HTTP 400)
    └── InvalidEvent  -- a known event type with invalid fields (HTTP 422)
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)
from pydantic_core import from_json

Snowflake = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]{1,20}$")]
"""A Discord id: a string of digits (Sphere sends them as strings, never numbers)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Payload(_Model):
    """What a sender posted, as its own typed model: the base of every sender's events.

    `SOURCE` names the sender (``"sphere"``, ``"topgg"``, ...) and `TYPE_FIELD` the body field that holds
    the event's type; `normalized` is overridden by the payloads that are a vote or a review.
    """

    SOURCE: ClassVar[str] = "sphere"
    TYPE_FIELD: ClassVar[str] = "event"
    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = None
    """What `normalized` returns for this model (it may still return None for a payload it cannot map)."""

    def normalized(self) -> Vote | Review | None:
        """This payload as the sender-independent `Vote` or `Review`, or None for anything else."""
        return None


class Vote(_Model):
    """A vote, whichever site it came from: what ``@on(Vote)`` handlers receive.

    A test delivery (a site's "send test" button) is a `Vote` with ``test=True``: it proves the path
    works and must never earn a reward. `payload` is the sender's own typed model (`VoteAdd`,
    `relay.core.senders.topgg.TopggVote`, ...) for anything the normalized fields leave out.
    """

    source: StrictStr
    """Who sent it: ``"sphere"``, ``"topgg"``, ``"standard"``."""
    user_id: Snowflake
    """The voter's Discord id."""
    target_id: Snowflake
    """The Discord id of the guild or bot voted for."""
    target: Literal["guild", "bot"] = "guild"
    """What `target_id` is."""
    weight: StrictInt = Field(default=1, ge=1)
    """How many votes this one counts as: 1, or 2 under top.gg's weekend multiplier."""
    test: StrictBool = False
    """True for a test delivery from the site's dashboard: not a real vote, reward nothing."""
    id: StrictStr | None = None
    """The sender's own id of this vote, where it has one (top.gg v1)."""
    created_at: datetime | None = None
    """When the vote was cast, where the sender says."""
    expires_at: datetime | None = None
    """When the user may vote again, where the sender says (top.gg v1: 12 h after the vote)."""
    payload: SerializeAsAny[Payload]
    """The sender's original event, as its own typed model."""


class Review(_Model):
    """A review, whichever site it came from: what ``@on(Review)`` handlers receive."""

    source: StrictStr
    user_id: Snowflake
    """The reviewer's Discord id."""
    target_id: Snowflake
    """The Discord id of the guild or bot reviewed."""
    target: Literal["guild", "bot"] = "guild"
    stars: StrictInt = Field(ge=1, le=5)
    title: StrictStr = ""
    text: StrictStr = ""
    test: StrictBool = False
    """True for a test delivery: not a real review."""
    id: StrictStr | None = None
    """The sender's own id of this review, where it has one (Sphere's review id)."""
    created_at: datetime | None = None
    payload: SerializeAsAny[Payload]
    """The sender's original event, as its own typed model."""


class Event(Payload):
    """Any Sphere event. Handlers registered with ``"*"`` may receive this base class for new types."""

    event: StrictStr


class VoteAdd(Event):
    """A user voted for the listing."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Vote

    event: Literal["VOTE_ADD"]
    guild_id: Snowflake
    user_id: Snowflake

    def normalized(self) -> Vote:
        return Vote(
            source="sphere", user_id=self.user_id, target_id=self.guild_id, target="guild", payload=self
        )


class ReviewContent(_Model):
    title: StrictStr
    description: StrictStr


class SphereReview(_Model):
    """The review inside Sphere's ``REVIEW_ADD`` (`Review` is the normalized one)."""

    id: Snowflake
    published_timestamp: StrictInt = Field(ge=0)
    """Milliseconds since the Unix epoch."""
    stars: StrictInt = Field(ge=1, le=5)
    content: ReviewContent


class ReviewAdd(Event):
    """A user left a review on the listing."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Review

    event: Literal["REVIEW_ADD"]
    guild_id: Snowflake
    user_id: Snowflake
    review: SphereReview

    def normalized(self) -> Review:
        review = self.review
        return Review(
            source="sphere",
            user_id=self.user_id,
            target_id=self.guild_id,
            target="guild",
            stars=review.stars,
            title=review.content.title,
            text=review.content.description,
            id=review.id,
            created_at=datetime.fromtimestamp(review.published_timestamp / 1000, tz=UTC),
            payload=self,
        )


Normalized = Vote | Review
"""The sender-independent events handlers may register for."""


def normalize(payload: Payload) -> Vote | Review | None:
    """The normalized `Vote` or `Review` of a parsed event from any sender, or None (e.g. an unknown type)."""
    return payload.normalized()


MODELS: dict[str, type[Event]] = {"VOTE_ADD": VoteAdd, "REVIEW_ADD": ReviewAdd}


class InvalidBody(ValueError):
    """The body is not a JSON object."""


class InvalidEvent(ValueError):
    """A known event type with invalid fields. `fields` names each, never echoing the input."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{f['field']}: {f['message']}" for f in fields))


def load_object(body: bytes) -> dict[str, Any]:
    """Decode `body` as a JSON object, or raise `InvalidBody`."""
    try:
        # pydantic-core's parser: ~10x faster than json.loads on the hot path, and stricter in
        # the right places (NaN/Infinity, lone surrogates, invalid UTF-8 are all refused).
        data = from_json(body, allow_inf_nan=False, cache_strings="keys")
    except ValueError as exc:  # also raised for too deep nesting and numbers out of range
        raise InvalidBody("body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidBody("body is not a JSON object")
    return data


def validate(data: dict[str, Any]) -> Event:
    """Build the model for `data["event"]`, or raise `InvalidEvent`."""
    name = data.get("event")
    model = MODELS.get(name, Event) if isinstance(name, str) else Event
    return validate_with(model, data)


P = TypeVar("P", bound=Payload)


def validate_with(model: type[P], data: dict[str, Any]) -> P:
    """`model` built from `data`, or `InvalidEvent` naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(
            [
                {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
                for err in exc.errors(include_input=False, include_url=False)
            ]
        ) from None


def parse(body: bytes) -> Event:
    """Parse and validate a raw webhook body."""
    return validate(load_object(body))


def dedupe_key(event: Event, body: bytes) -> str:
    """What makes two deliveries the same event.

    A review has its own id, so a redelivered review is dropped even if Sphere re-serialized it.
    Votes carry no id: two byte-identical bodies within the window are taken as one delivery.
    """
    if isinstance(event, ReviewAdd):
        return f"review:{event.review.id}"
    return f"sha256:{hashlib.sha256(body).hexdigest()}"
