"""A Standard Webhooks sender (https://www.standardwebhooks.com): any site or tool that signs with it.

The scheme fixes the signature, not the payload, so the relay documents the events it takes
(docs/sources.md): the envelope the spec recommends, ``{"type", "timestamp", "data"}``, with
``vote.create`` and ``review.create`` whose ``data`` holds the normalized fields. Stored types are
``standard:<type>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from relay.core.events import Payload, Review, Snowflake, Vote, _Model


class StandardEvent(Payload):
    """Any event from a Standard Webhooks sender; a type this relay does not know is parsed as this base."""

    SOURCE: ClassVar[str] = "standard"
    TYPE_FIELD: ClassVar[str] = "type"

    type: StrictStr
    timestamp: StrictStr | None = None


class StandardVoteData(_Model):
    user_id: Snowflake
    target_id: Snowflake
    target: Literal["guild", "bot"] = "guild"
    weight: StrictInt = Field(default=1, ge=1)
    test: StrictBool = False
    id: StrictStr | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None


class StandardReviewData(_Model):
    user_id: Snowflake
    target_id: Snowflake
    target: Literal["guild", "bot"] = "guild"
    stars: StrictInt = Field(ge=1, le=5)
    title: StrictStr = ""
    text: StrictStr = ""
    test: StrictBool = False
    id: StrictStr | None = None
    created_at: datetime | None = None


def _declared(data: _Model) -> dict[str, object]:
    """`data`'s declared fields (not the extra ones a sender may add)."""
    return {name: getattr(data, name) for name in type(data).model_fields}


class StandardVote(StandardEvent):
    """``vote.create``: a user voted."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Vote

    type: Literal["vote.create"]
    data: StandardVoteData

    def normalized(self) -> Vote:
        return Vote.model_validate({"source": "standard", **_declared(self.data), "payload": self})


class StandardReview(StandardEvent):
    """``review.create``: a user left a review."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Review

    type: Literal["review.create"]
    data: StandardReviewData

    def normalized(self) -> Review:
        return Review.model_validate({"source": "standard", **_declared(self.data), "payload": self})


MODELS: dict[str, type[StandardEvent]] = {"vote.create": StandardVote, "review.create": StandardReview}
