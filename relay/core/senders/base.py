"""What a sender is: a small pure unit the edge runs for each request to its route.

`Sender.verify` takes the headers it reads, the raw body, and the clock, and answers None (accepted)
or the reason it refuses (recorded for ``relay rejected``, never holding a secret, never sent to the
client); `Sender.parse` builds its typed model; `Sender.dedupe_key` says which deliveries are one
event. The normalized `Vote`/`Review` comes from the model itself (`relay.core.events.normalize`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import ClassVar

from relay.core.events import Payload, load_object, validate_with

TOLERANCE_SECONDS = 300
"""How far a signed timestamp may be from the relay's clock, either way (top.gg's docs and the
Standard Webhooks reference library both say 5 minutes)."""

MAX_HEADER_CHARS = 1024
"""A header a sender reads may be at most this long; real ones are far shorter."""


class Sender(ABC):
    """One site that posts events to the relay, with the secrets it signs with."""

    NAME: ClassVar[str]
    """The source's name: in stored types (``<name>:<type>``), stream entries, metrics and refusals."""
    PATH: ClassVar[str]
    """Its route on the edge."""
    HEADERS: ClassVar[frozenset[str]]
    """The (lowercase) headers `verify` reads."""
    MODELS: ClassVar[Mapping[str, type[Payload]]]
    BASE: ClassVar[type[Payload]]
    """The model of a type the relay does not know."""

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        """None when the request is the sender's, else why not. `now` is Unix seconds."""

    def parse(self, body: bytes) -> Payload:
        """The body as its typed model (`InvalidBody`, `InvalidEvent` as `relay.core.events.parse`)."""
        data = load_object(body)
        name = data.get(self.BASE.TYPE_FIELD)
        model = self.MODELS.get(name, self.BASE) if isinstance(name, str) else self.BASE
        return validate_with(model, data)

    def event_type(self, payload: Payload) -> str:
        """The sender's own type of `payload` (the stored type adds ``<name>:``)."""
        return str(getattr(payload, self.BASE.TYPE_FIELD))

    def dedupe_key(self, payload: Payload, headers: Mapping[str, str], body: bytes) -> str:
        """What makes two deliveries one event: by default the body, namespaced by the source."""
        return f"{self.NAME}:sha256:{hashlib.sha256(body).hexdigest()}"


def read_headers(raw: Iterable[tuple[bytes, bytes]], wanted: frozenset[str]) -> dict[str, str] | str:
    """The `wanted` headers of a raw ASGI header list, or why they cannot be trusted: a repeated or
    overlong one (a request carries each of them once). ASGI servers give names in lowercase."""
    found: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1")
        if name not in wanted:
            name = name.lower()  # another server's spelling: only then pay for lowering it
            if name not in wanted:
                continue
        if name in found:
            return f"repeated {name} header"
        if len(raw_value) > MAX_HEADER_CHARS:
            return f"{name} header over {MAX_HEADER_CHARS} characters"
        found[name] = raw_value.decode("latin-1")
    return found


def timestamp_refusal(text: str, now: float, tolerance: float = TOLERANCE_SECONDS) -> str | None:
    """Why a signed Unix-seconds timestamp is refused (malformed, stale or in the future), or None."""
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return "malformed timestamp"
    age = now - int(text)
    if age > tolerance:
        return f"stale timestamp ({int(age)} s old, over {tolerance:g} s)"
    if -age > tolerance:
        return f"future timestamp ({int(-age)} s ahead, over {tolerance:g} s)"
    return None
