"""The routes of the senders beside Sphere (``POST /webhook/topgg``, ``POST /webhook/standard``).

Each is Sphere's endpoint (`relay.edge.webhook`: the same body limits, answers, log line, metrics and
one batched Redis write) with the sender's pure unit (`relay.core.senders`) in place of Sphere's
signature check and parsing. A sender whose secret is not set has no route: its path answers 404.
"""

from __future__ import annotations

import time
from typing import Any

from relay.core.senders import qualified
from relay.core.senders.base import Sender, read_headers
from relay.core.senders.standard import StandardSender
from relay.core.senders.topgg import TopggSender
from relay.core.settings import Settings
from relay.edge.errors import BadSignature, BodyTooLarge
from relay.edge.metrics import EdgeMetrics
from relay.edge.webhook import WebhookEndpoint, content_length, describe


def configured(settings: Settings) -> list[Sender]:
    """The senders beside Sphere whose secrets `settings` set, current secret first."""
    senders: list[Sender] = []
    if settings.topgg_secrets() or settings.topgg_authorizations():
        senders.append(TopggSender(settings.topgg_secrets(), settings.topgg_authorizations()))
    if settings.standard_webhooks_secrets():
        senders.append(StandardSender(settings.standard_webhooks_secrets()))
    return senders


class SenderEndpoint(WebhookEndpoint):
    """The ASGI app behind one sender's route."""

    def __init__(self, settings: Settings, sender: Sender, metrics: EdgeMetrics | None = None) -> None:
        super().__init__(settings, metrics)
        self._observe = self.metrics.observer(sender.NAME)
        self.sender = sender
        self.source = sender.NAME
        self.path = sender.PATH

    def check_head(self, headers: list[tuple[bytes, bytes]]) -> Any:
        if content_length(headers) > self._max_body:
            raise BodyTooLarge(self._too_large)
        return read_headers(headers, self.sender.HEADERS)

    def accept(self, head: Any, body: bytes) -> tuple[str, str]:
        if isinstance(head, str):  # a header repeated or too long
            raise BadSignature(head)
        sender = self.sender
        refused = sender.verify(head, body, time.time())
        if refused is not None:
            raise BadSignature(refused)
        payload = sender.parse(body)
        return sender.dedupe_key(payload, head, body), qualified(sender.NAME, sender.event_type(payload))


def openapi(schema: dict[str, Any], senders: list[Sender]) -> None:
    """Describe each sender's route in an OpenAPI document (as `relay.edge.webhook.openapi` does Sphere's)."""
    for sender in senders:
        headers = [
            {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
            for name in sorted(sender.HEADERS)
        ]
        models = list(dict.fromkeys([*sender.MODELS.values(), sender.BASE]))
        describe(
            schema,
            sender.PATH,
            f"Receive a signed {sender.NAME} event",
            f"webhook_{sender.NAME}",
            models,
            headers,
        )
