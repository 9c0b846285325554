"""A Standard Webhooks sender (https://www.standardwebhooks.com): any site or tool that signs with it.

The scheme fixes the signature, not the payload, so the relay documents the events it takes
(docs/sources.md): the envelope the spec recommends, ``{"type", "timestamp", "data"}``, with
``vote.create`` and ``review.create`` whose ``data`` holds the normalized fields. Stored types are
``standard:<type>``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import ClassVar, Literal, TypeVar

from pydantic import Field, StrictBool, StrictInt, StrictStr
from standardwebhooks import Webhook

from relay.core.events import Payload, Review, Snowflake, Vote, _Model
from relay.core.senders.base import TOLERANCE_SECONDS, Sender, timestamp_refusal

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


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


N = TypeVar("N", Vote, Review)


def _normalized(model: type[N], event: StandardEvent, data: _Model) -> N:
    """`event` as `model`, from `data`'s declared fields (not the extra ones a sender may add)."""
    declared = {name: getattr(data, name) for name in type(data).model_fields}
    return model.model_validate({"source": StandardEvent.SOURCE, **declared, "payload": event})


class StandardVote(StandardEvent):
    """``vote.create``: a user voted."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Vote

    type: Literal["vote.create"]
    data: StandardVoteData

    def normalized(self) -> Vote:
        return _normalized(Vote, self, self.data)


class StandardReview(StandardEvent):
    """``review.create``: a user left a review."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Review

    type: Literal["review.create"]
    data: StandardReviewData

    def normalized(self) -> Review:
        return _normalized(Review, self, self.data)


MODELS: dict[str, type[StandardEvent]] = {"vote.create": StandardVote, "review.create": StandardReview}


class StandardSender(Sender):
    """``POST /webhook/standard``: verified with the `standardwebhooks` package under `secrets`
    (``whsec_...``, current first); deduplicated on ``webhook-id``, which a sender keeps on its retries."""

    NAME = "standard"
    PATH = "/webhook/standard"
    HEADERS = frozenset({ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER})
    MODELS = MODELS
    BASE = StandardEvent

    def __init__(self, secrets: Iterable[str], tolerance: float = TOLERANCE_SECONDS) -> None:
        self._hooks = tuple(Webhook(secret) for secret in secrets)
        self._tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        missing = [name for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not headers.get(name)]
        if missing:
            return f"missing {', '.join(missing)} header"
        # The timestamp against the clock given (`Webhook.verify` reads the system's own, which a test
        # cannot set); the signatures as `Webhook.verify` checks them, with the package's `sign`.
        text = headers[TIMESTAMP_HEADER]
        refused = timestamp_refusal(text, now, self._tolerance)
        if refused is not None:
            return refused
        stamp = datetime.fromtimestamp(int(text), tz=UTC)
        passed = [value.encode() for value in headers[SIGNATURE_HEADER].split(" ")]
        matched = False
        for hook in self._hooks:  # every secret, every signature: the time taken tells nothing
            expected = hook.sign(headers[ID_HEADER], stamp, body).encode()
            for value in passed:
                matched |= hmac.compare_digest(expected, value)
        return None if matched else "wrong signature"

    def dedupe_key(self, payload: Payload, headers: Mapping[str, str], body: bytes) -> str:
        """The sender's ``webhook-id``: the same on its retries, whatever the bytes."""
        return f"standard:id:{headers[ID_HEADER]}"
