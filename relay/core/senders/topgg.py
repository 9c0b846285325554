"""top.gg (https://top.gg): its v1 events (``vote.create``, ``webhook.test``) and the legacy v0 ones
(``upvote``, ``test``), and how each maps to a `Vote`.

v1 is signed: ``x-topgg-signature: t=<unix seconds>,v1=<hex>``, the hex HMAC-SHA256 of ``"<t>." + raw
body`` keyed with the whole ``whs_...`` secret (as top.gg's docs and Python SDK do). v0 sends a shared
secret verbatim in ``Authorization``. Stored types are ``topgg:<type>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from relay.core.events import Payload, Review, Snowflake, Vote, _Model


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


def _target(project_type: str) -> Literal["guild", "bot"]:
    return "bot" if project_type == "bot" else "guild"


class TopggVote(TopggEvent):
    """v1 ``vote.create``: a user voted for the project."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Vote

    type: Literal["vote.create"]
    data: TopggVoteData

    def normalized(self) -> Vote:
        data = self.data
        return Vote(
            source="topgg",
            user_id=data.user.platform_id,
            target_id=data.project.platform_id,
            target=_target(data.project.type),
            weight=data.weight,
            id=data.id,
            created_at=data.created_at,
            expires_at=data.expires_at,
            payload=self,
        )


class TopggTest(TopggEvent):
    """v1 ``webhook.test``: the dashboard's test button. Not a vote: its `Vote` has ``test=True``."""

    NORMALIZED: ClassVar[type[Vote] | type[Review] | None] = Vote

    type: Literal["webhook.test"]
    data: TopggTestData

    def normalized(self) -> Vote:
        data = self.data
        return Vote(
            source="topgg",
            user_id=data.user.platform_id,
            target_id=data.project.platform_id,
            target=_target(data.project.type),
            test=True,
            payload=self,
        )


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
