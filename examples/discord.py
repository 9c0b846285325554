"""Sphere on Discord: thank each voter, give them a role for 12 hours, post each review as an embed.

Run it with ``RELAY_TASKS=examples.discord``. Its settings are its own (example settings, read
here, not the relay's ``RELAY_*``):

- ``DISCORD_WEBHOOK_URL``: a channel webhook (Channel settings > Integrations > Webhooks) for the
  thanks and the reviews; unset, nothing is posted.
- ``DISCORD_BOT_TOKEN`` and ``DISCORD_VOTER_ROLE_ID``: a bot in your server with Manage Roles, its
  role above the voter role; unset, no role is given.
- ``DISCORD_VOTER_ROLE_HOURS`` (12) and ``DISCORD_API_URL`` (``https://discord.com/api/v10``).

Discord's rate limits (HTTP 429) are honoured by raising ``Retry(defer=retry_after)``, and each
effect is wrapped in ``ctx["once"]``, so a retry or a replay never posts twice or grants twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from relay.core.events import ReviewAdd, VoteAdd
from worker import Context, Permanent, Retry, on
from worker.later import hours

log = logging.getLogger("examples.discord")

DISCORD_API = "https://discord.com/api/v10"
STAR_COLOURS = {1: 0xE74C3C, 2: 0xE67E22, 3: 0xF1C40F, 4: 0x2ECC71, 5: 0x3498DB}


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    webhook_url: str = ""
    bot_token: str = ""
    voter_role_id: str = ""
    voter_role_hours: float = 12.0
    api_url: str = DISCORD_API

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> DiscordSettings:
        def read(name: str) -> str:
            return environ.get(name, "").strip()

        try:
            role_hours = float(read("DISCORD_VOTER_ROLE_HOURS") or 12)
        except ValueError:
            raise SystemExit("examples.discord: DISCORD_VOTER_ROLE_HOURS must be a number of hours") from None
        return cls(
            webhook_url=read("DISCORD_WEBHOOK_URL"),
            bot_token=read("DISCORD_BOT_TOKEN"),
            voter_role_id=read("DISCORD_VOTER_ROLE_ID"),
            voter_role_hours=role_hours,
            api_url=(read("DISCORD_API_URL") or DISCORD_API).rstrip("/"),
        )


class Discord:
    """The two Discord APIs the handlers use, over one ``httpx.AsyncClient``."""

    def __init__(self, settings: DiscordSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    async def post(self, payload: dict[str, Any]) -> None:
        """Post a message through the channel webhook."""
        check(await self.http.post(self.settings.webhook_url, json=payload))

    async def set_role(self, guild_id: str, user_id: str, *, give: bool, reason: str) -> None:
        """Give (PUT) or take back (DELETE) the voter role; a member who left needs neither."""
        url = (
            f"{self.settings.api_url}/guilds/{guild_id}/members/{user_id}/roles/{self.settings.voter_role_id}"
        )
        headers = {"Authorization": f"Bot {self.settings.bot_token}", "X-Audit-Log-Reason": reason}
        response = await self.http.request("PUT" if give else "DELETE", url, headers=headers)
        if response.status_code == 404 and not give:
            return  # Unknown Member or Role: nothing left to take back
        check(response)


def check(response: httpx.Response) -> None:
    """429: retry after Discord's ``retry_after``; another 4xx: `Permanent`; 5xx or network: retry."""
    if response.status_code == 429:
        try:
            wait = float(response.json()["retry_after"])  # seconds, more precise than the header
        except (ValueError, KeyError, TypeError):
            header = response.headers.get("Retry-After", "")
            wait = float(header) if header.replace(".", "", 1).isdigit() else 5.0
        raise Retry(defer=wait)
    if 400 <= response.status_code < 500:
        raise Permanent(
            f"Discord refused {response.request.method} {response.request.url.path}: HTTP {response.status_code}"
        )
    response.raise_for_status()


class TaskContext(Context, total=False):
    """`Context` plus what `startup` adds."""

    discord: Discord


async def startup(ctx: dict[str, Any]) -> None:
    settings = DiscordSettings.from_env()
    ctx["discord"] = Discord(settings, httpx.AsyncClient(timeout=10, headers={"User-Agent": "sphere-relay"}))
    if not settings.webhook_url:
        log.info("DISCORD_WEBHOOK_URL is not set: no thanks or reviews will be posted")
    if not (settings.bot_token and settings.voter_role_id):
        log.info("DISCORD_BOT_TOKEN or DISCORD_VOTER_ROLE_ID is not set: voters get no role")


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["discord"].http.aclose()


async def post_once(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Post `payload` to the channel once per event, however often the handler runs."""
    discord = ctx["discord"]
    if not discord.settings.webhook_url:
        return
    async with ctx["once"]("post") as first:
        if first:
            await discord.post(payload)


@on(VoteAdd, name="thank-voter")
async def thank_voter(ctx: TaskContext, event: VoteAdd) -> None:
    await post_once(
        ctx,
        {
            "content": f"Thank you for voting for our server, <@{event.user_id}>!",
            "allowed_mentions": {"users": [event.user_id]},
        },
    )


@on(VoteAdd, name="voter-role")
async def give_voter_role(ctx: TaskContext, event: VoteAdd) -> None:
    """Give the role now and schedule taking it back; each step once, whatever retries happen."""
    discord = ctx["discord"]
    if not (discord.settings.bot_token and discord.settings.voter_role_id):
        return
    async with ctx["once"]("grant") as first:
        if first:
            await discord.set_role(event.guild_id, event.user_id, give=True, reason="voted on Sphere")
    await ctx["later"]("remove-voter-role", hours(discord.settings.voter_role_hours))


@on(VoteAdd, name="remove-voter-role", scheduled=True)
async def remove_voter_role(ctx: TaskContext, event: VoteAdd) -> None:
    await ctx["discord"].set_role(event.guild_id, event.user_id, give=False, reason="vote reward expired")


@on(ReviewAdd, name="post-review")
async def post_review(ctx: TaskContext, event: ReviewAdd) -> None:
    await post_once(ctx, {"embeds": [review_embed(event)], "allowed_mentions": {"parse": []}})


def review_embed(event: ReviewAdd) -> dict[str, Any]:
    """A Discord embed for a review: its title, text and stars, within Discord's length limits."""
    review = event.review
    published = datetime.fromtimestamp(review.published_timestamp / 1000, tz=UTC)
    return {
        "title": review.content.title[:256],
        "description": review.content.description[:4096],
        "color": STAR_COLOURS[review.stars],
        "fields": [
            {"name": "Stars", "value": "★" * review.stars + "☆" * (5 - review.stars), "inline": True},
            {"name": "From", "value": f"<@{event.user_id}>", "inline": True},
        ],
        "timestamp": published.isoformat(),
    }
