"""The admin page's query parameters, checked: pure, and every refusal says what is wrong.

A bad value raises `BadInput`, which the page answers with 400 and the reason; the reason never
repeats the value (the page escapes everything anyway, but a reason needs no echo to be clear).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from relay.cli.timespec import parse_duration
from relay.core.senders import PAYLOADS

ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
SNOWFLAKE = re.compile(r"[0-9]{1,20}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,199}")
"""A handler name or an error type: a Python identifier, dotted or qualified at most."""


class BadInput(ValueError):
    """A query parameter the page cannot use; the message is the reason, fit to show."""


def _one(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    return value or None


def _match(params: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = _one(params, name)
    if value is not None and not pattern.fullmatch(value):
        raise BadInput(f"{name} must be {what}")
    return value


@dataclass(frozen=True, slots=True)
class Search:
    """What ``/events`` looks for; at least one field is set."""

    entry_id: str | None = None
    user_id: str | None = None
    guild_id: str | None = None
    """The guild or bot voted for (any sender's target)."""
    source: str | None = None
    """Only this sender's events (``sphere``, ``topgg``, ``standard``)."""

    def query(self) -> dict[str, str]:
        fields = (
            ("entry_id", self.entry_id),
            ("user_id", self.user_id),
            ("guild_id", self.guild_id),
            ("source", self.source),
        )
        return {k: v for k, v in fields if v}


def parse_search(params: Mapping[str, str]) -> Search | None:
    """The search in `params`, None when nothing is asked (the empty form)."""
    search = Search(
        entry_id=_match(params, "entry_id", ENTRY_ID, "an event id such as 1718000000000-0"),
        user_id=_match(params, "user_id", SNOWFLAKE, "a Discord user id: 1 to 20 digits"),
        guild_id=_match(params, "guild_id", SNOWFLAKE, "a Discord server id (or a bot's): 1 to 20 digits"),
        source=_source(params),
    )
    return search if search.query() else None


SOURCES = tuple(PAYLOADS)
"""The senders a search may select."""


def _source(params: Mapping[str, str]) -> str | None:
    value = _one(params, "source")
    if value is not None and value not in SOURCES:
        raise BadInput(f"source must be one of {', '.join(SOURCES)}")
    return value


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead letters ``/dead`` shows and the bulk actions touch."""

    handler: str | None = None
    error_type: str | None = None
    older_than_s: float | None = None
    newer_than_s: float | None = None
    older_than: str | None = None
    newer_than: str | None = None
    upto: str | None = None
    """Only dead letters up to this id: what a confirmation counted, not what arrived since."""

    def query(self) -> dict[str, str]:
        fields = {
            "handler": self.handler,
            "error_type": self.error_type,
            "older_than": self.older_than,
            "newer_than": self.newer_than,
        }
        return {k: v for k, v in fields.items() if v}

    def describe(self) -> str:
        parts = [f"{k.replace('_', ' ')} {v}" for k, v in self.query().items()]
        return ", ".join(parts) if parts else "all dead letters"


def _duration(params: Mapping[str, str], name: str) -> tuple[str | None, float | None]:
    value = _one(params, name)
    if value is None:
        return None, None
    if len(value) > 40:
        raise BadInput(f"{name} must be a duration such as 90s, 15m, 12h, 7d or 1h30m")
    try:
        return value, parse_duration(value)
    except ValueError:
        raise BadInput(f"{name} must be a duration such as 90s, 15m, 12h, 7d or 1h30m") from None


def parse_dead_filter(params: Mapping[str, str]) -> DeadFilter:
    older, older_s = _duration(params, "older_than")
    newer, newer_s = _duration(params, "newer_than")
    return DeadFilter(
        handler=_match(params, "handler", NAME, "a handler's name"),
        error_type=_match(params, "error_type", NAME, "an error type such as RuntimeError"),
        older_than_s=older_s,
        newer_than_s=newer_s,
        older_than=older,
        newer_than=newer,
        upto=_match(params, "upto", ENTRY_ID, "a dead letter id such as 1718000000000-0"),
    )
