"""top.gg (https://top.gg): its v1 events (``vote.create``, ``webhook.test``) and the legacy v0 ones
(``upvote``, ``test``), and how each maps to a `Vote`.

v1 is signed: ``x-topgg-signature: t=<unix seconds>,v1=<hex>``, the hex HMAC-SHA256 of ``"<t>." + raw
body`` keyed with the whole ``whs_...`` secret (as top.gg's docs and Python SDK do). v0 sends a shared
secret verbatim in ``Authorization``. Stored types are ``topgg:<type>``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from relay.core.events import Payload, Review, Snowflake, Vote, _Model
from relay.core.senders.base import TOLERANCE_SECONDS, Sender, timestamp_refusal

SIGNATURE_HEADER = "x-topgg-signature"
AUTHORIZATION_HEADER = "authorization"
TRACE_HEADER = "x-topgg-trace"
"""top.gg's id of a delivery, for its support; kept in a refusal's record, not needed to verify."""
_HEX_LENGTH = 64


class TopggEvent(Payload):
    """Any top.gg event, v1 or v0; a type this relay does not know is parsed as this base."""

    SOURCE: ClassVar[str] = "topgg"
    TYPE_FIELD: ClassVar[str] = "type"

    type: StrictStr


class TopggProject(_Model):
    id: StrictStr
    """top.gg's id of the project."""
    type: StrictStr
    """``"bot"`` or ``"server"``."""
    platform: StrictStr = "discord"
    platform_id: Snowflake
    """The Discord id of the bot or the server."""


class TopggUser(_Model):
    id: StrictStr
    """top.gg's id of the user."""
    platform_id: Snowflake
    """The user's Discord id."""
    name: StrictStr | None = None
    avatar_url: StrictStr | None = None


class TopggVoteData(_Model):
    id: StrictStr
    """The vote's id (a snowflake string): the relay dedupes on it."""
    weight: StrictInt = Field(ge=1)
    created_at: datetime
    expires_at: datetime
    """When the user may vote again (12 h after the vote)."""
    project: TopggProject
    user: TopggUser
    query: dict[str, Any] | None = None


class TopggTestData(_Model):
    project: TopggProject
    user: TopggUser


def _vote(payload: TopggEvent, data: TopggTestData | TopggVoteData, **fields: Any) -> Vote:
    """A v1 event's `Vote`: the voter and the project from `data`, the rest from `fields`."""
    target = "bot" if data.project.type == "bot" else "guild"
    return Vote.model_validate(
        {
            "source": "topgg",
            "user_id": data.user.platform_id,
            "target_id": data.project.platform_id,
            "target": target,
            "payload": payload,
            **fields,
        }
    )


class TopggVote(TopggEvent):
    """v1 ``vote.create``: a user voted for the project."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Vote

    type: Literal["vote.create"]
    data: TopggVoteData

    def normalized(self) -> Vote:
        data = self.data
        return _vote(
            self, data, weight=data.weight, id=data.id, created_at=data.created_at, expires_at=data.expires_at
        )


class TopggTest(TopggEvent):
    """v1 ``webhook.test``: the dashboard's test button. Not a vote: its `Vote` has ``test=True``."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Vote

    type: Literal["webhook.test"]
    data: TopggTestData

    def normalized(self) -> Vote:
        return _vote(self, self.data, test=True)


class TopggLegacyVote(TopggEvent):
    """v0 (legacy) ``upvote``, or ``test`` from the dashboard; a bot's vote has `bot`, a server's `guild`."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Vote

    type: Literal["upvote", "test"]
    user: Snowflake
    bot: Snowflake | None = None
    guild: Snowflake | None = None
    isWeekend: StrictBool = False  # top.gg's own name
    query: StrictStr | None = None

    def normalized(self) -> Vote | None:
        target_id = self.bot or self.guild
        if target_id is None:
            return None
        return Vote(
            source="topgg",
            user_id=self.user,
            target_id=target_id,
            target="bot" if self.bot else "guild",
            weight=2 if self.isWeekend else 1,
            test=self.type == "test",
            payload=self,
        )


MODELS: dict[str, type[TopggEvent]] = {
    "vote.create": TopggVote,
    "webhook.test": TopggTest,
    "upvote": TopggLegacyVote,
    "test": TopggLegacyVote,
}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``x-topgg-signature`` value top.gg sends for `body` at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class TopggSender(Sender):
    """``POST /webhook/topgg``: v1 signatures under `secrets` (``whs_...``, current first), or v0's
    ``Authorization`` equal to one of `authorizations`. Either list may be empty (that version is off)."""

    NAME = "topgg"
    PATH = "/webhook/topgg"
    HEADERS = frozenset({SIGNATURE_HEADER, AUTHORIZATION_HEADER})
    MODELS = MODELS
    BASE = TopggEvent

    def __init__(
        self, secrets: Iterable[str], authorizations: Iterable[str], tolerance: float = TOLERANCE_SECONDS
    ) -> None:
        # Keyed once: copying a keyed HMAC costs less than keying it per request (relay.edge.signature).
        self._keyed = tuple(hmac.new(s.encode(), digestmod=hashlib.sha256) for s in secrets)
        self._authorizations = tuple(a.encode() for a in authorizations)
        self._tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        signature = headers.get(SIGNATURE_HEADER)
        if signature is not None:
            return self._verify_v1(signature, body, now)
        authorization = headers.get(AUTHORIZATION_HEADER)
        if authorization is not None:
            return self._verify_v0(authorization)
        return f"missing {SIGNATURE_HEADER} (v1) or {AUTHORIZATION_HEADER} (v0) header"

    def _verify_v1(self, header: str, body: bytes, now: float) -> str | None:
        if not self._keyed:
            return f"a v1 {SIGNATURE_HEADER}, but RELAY_TOPGG_SECRET is not set"
        timestamps: list[str] = []
        claimed: list[str] = []
        for part in header.split(","):
            key, _, value = part.partition("=")
            key = key.strip()
            if key == "t":
                timestamps.append(value.strip())
            elif key == "v1":
                claimed.append(value.strip().lower())
        if len(timestamps) != 1 or not claimed:
            return f"malformed {SIGNATURE_HEADER} (expected t=<unix seconds>,v1=<hex>)"
        refused = timestamp_refusal(timestamps[0], now, self._tolerance)
        if refused is not None:
            return refused
        signed = timestamps[0].encode() + b"."
        claimed = [c for c in claimed if len(c) == _HEX_LENGTH and c.isascii()]
        matched = False
        for keyed in self._keyed:  # every secret, every claim: the time taken tells nothing
            digest = keyed.copy()
            digest.update(signed)
            digest.update(body)
            expected = digest.hexdigest()
            for value in claimed:
                matched |= hmac.compare_digest(expected, value)
        return None if matched else "wrong v1 signature"

    def _verify_v0(self, header: str) -> str | None:
        if not self._authorizations:
            return f"a v0 {AUTHORIZATION_HEADER} header, but RELAY_TOPGG_AUTHORIZATION is not set"
        given = header.encode("latin-1")
        matched = False
        for expected in self._authorizations:
            matched |= hmac.compare_digest(given, expected)
        return None if matched else f"wrong v0 {AUTHORIZATION_HEADER}"

    def dedupe_key(self, payload: Payload, headers: Mapping[str, str], body: bytes) -> str:
        """A v1 vote by its id, whatever bytes a redelivery has; a test or a v0 vote (no id) by its body."""
        if isinstance(payload, TopggVote):
            return f"topgg:vote:{payload.data.id}"
        return super().dedupe_key(payload, headers, body)
