"""A forwarding destination: its handler name and the ``webhook-id`` of each event sent to it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

NAME_PREFIX = "forward-"
"""Every forwarding handler's name starts with it; `is_destination_name` tells them from others."""

_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9.-]+")
_DESTINATION_NAME = re.compile(r"forward-[A-Za-z0-9.-]+-[0-9a-f]{6}")
MAX_HOST_CHARS = 60


def url_tag(url: str) -> str:
    """Six hex digits standing for the whole URL: two URLs on one host get different names and ids."""
    return hashlib.sha256(url.encode()).hexdigest()[:6]


@dataclass(frozen=True, slots=True)
class Destination:
    """One URL of ``RELAY_FORWARD_URL``."""

    url: str

    @property
    def name(self) -> str:
        """The handler's name, e.g. ``forward-bot.example.com-3f2a1c``: the host for people, a tag of the
        whole URL so that it stays unique and the same for as long as the URL is."""
        host = _NOT_IN_NAMES.sub("-", urlsplit(self.url).hostname or "host").strip("-.")[:MAX_HOST_CHARS]
        return f"{NAME_PREFIX}{host or 'host'}-{url_tag(self.url)}"

    def webhook_id(self, entry_id: str) -> str:
        """One id per (event, destination), the same on every attempt and replay: receivers dedupe on it."""
        return f"msg_{entry_id}_{url_tag(self.url)}"


def is_destination_name(name: str) -> bool:
    """Whether `name` has the shape of a forwarding handler's (`Destination.name`)."""
    return _DESTINATION_NAME.fullmatch(name) is not None
