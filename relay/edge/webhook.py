"""``POST /webhook``: the hot path, as a plain ASGI endpoint.

Off FastAPI on purpose: routing, dependency injection and response classes cost more than the
whole job (see the benchmarks issue). The steps, each refusing with the answer from
`relay.edge.errors`:

1. read the raw body, at most ``max_body_bytes`` (Content-Length checked first, then counted as
   it arrives, so a chunked body is cut off too), within ``body_timeout`` if it trickles in;
2. check ``X-Sphere-Signature`` over those exact bytes, before any parsing;
3. parse and validate the event (`relay.core.events.parse`);
4. dedupe and store it in one batched Redis round trip (`relay.edge.ingest.IngestWriter`).

Exactly one log line and one count in `relay.core.metrics` per request tell how it ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.types import Receive, Scope, Send

from relay.core.events import Event, ReviewAdd, VoteAdd, dedupe_key, parse
from relay.core.logs import RequestLog
from relay.core.settings import Settings
from relay.edge import signature
from relay.edge.errors import (
    INTERNAL_ERROR,
    SHUTTING_DOWN,
    Answer,
    BadSignature,
    BodyTimeout,
    BodyTooLarge,
    RedisUnavailable,
    answer_for,
)
from relay.edge.ingest import IngestWriter, Written
from relay.edge.metrics import EdgeMetrics
from relay.edge.rejections import RejectionRecorder

log = logging.getLogger(__name__)

PATH = "/webhook"

_SIGNATURE = signature.HEADER.lower().encode()
_CONTENT_LENGTH = b"content-length"
_JSON = (b"content-type", b"application/json")
_QUEUED = b'{"status":"queued","id":"'
_DUPLICATE = b'{"status":"duplicate","id":"'
_END = b'"}'


class _ClientGone(Exception):
    """The client disconnected before its body was complete: there is nobody to answer."""


class WebhookEndpoint:
    """The ASGI app behind ``POST /webhook``.

    `writer` is attached by the application's lifespan once Redis is set up; until then (and after
    shutdown) every event is answered 503, never accepted unstored.
    """

    def __init__(self, settings: Settings, metrics: EdgeMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else EdgeMetrics()
        self._observe: Callable[[str, float], None] = self.metrics.observe
        self._verify = signature.Verifier(settings.signing_keys())
        self.source = ""
        """The sender's name in stream entries and refusal records; empty for Sphere's own route."""
        self._max_body = settings.max_body_bytes
        self._body_timeout = settings.body_timeout
        self._too_large = f"body is over {settings.max_body_bytes} bytes"
        self.writer: IngestWriter | None = None
        self.rejections: RejectionRecorder | None = None
        # Started and stopped by the application's lifespan, once logging is set up.
        self.request_log = RequestLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        received_ms = time.time_ns() // 1_000_000
        body = b""
        event_type: str | None = None
        entry_id: bytes | None = None
        why = ""
        try:
            head = self.check_head(scope["headers"])
            body = await self._read_body(receive)
            key, event_type = self.accept(head, body)
            writer = self.writer
            if writer is None:
                raise RedisUnavailable("the edge is not started")
            written = await writer.write(key, event_type, body, received_ms, self.source)
            answer, entry_id = _stored_answer(written)
        except _ClientGone:
            elapsed = time.perf_counter() - started
            self._observe("client_gone", elapsed)
            self.request_log.write("client_gone", 0, 0, None, None, elapsed)
            return
        except Exception as exc:
            answer = answer_for(exc)
            if answer is INTERNAL_ERROR:
                log.exception("webhook failed unexpectedly; answered 503 so that Sphere retries")
            why = str(exc) if isinstance(exc, BadSignature) else ""
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when a stop's grace ends: a body still arriving,
            # a write not yet confirmed. 503, not uvicorn's 500: the sender delivers it again.
            answer = SHUTTING_DOWN
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
        await send({"type": "http.response.body", "body": answer.body})
        # After answering: the request's one count, its one log line, and a 4xx's record.
        elapsed = time.perf_counter() - started
        self._observe(answer.code, elapsed)
        self.request_log.write(answer.code, answer.status, len(body), event_type, entry_id, elapsed)
        if 400 <= answer.status < 500 and self.rejections is not None:  # after answering: never delays it
            # `why` (what failed) is for the record only: the answer is the same for every signature failure.
            reason = f"{answer.code}: {why}" if why else answer.code
            self.rejections.record(scope, answer.status, reason, len(body), body, received_ms, self.source)

    # Sphere's checks; a sender's endpoint (`relay.edge.senders`) overrides these two.

    def check_head(self, headers: list[tuple[bytes, bytes]]) -> Any:
        """What `accept` needs of the request's head; `BodyTooLarge` by the declared length."""
        claimed, claims, declared = _scan_headers(headers)
        if declared > self._max_body:
            raise BodyTooLarge(self._too_large)
        return claimed, claims

    def accept(self, head: Any, body: bytes) -> tuple[str, str]:
        """``(dedupe key, stored type)`` of a request whose signature holds; raises what it is refused with."""
        claimed, claims = head
        if claims != 1 or not self._verify(body, claimed):
            raise BadSignature
        event = parse(body)
        return dedupe_key(event, body), event.event

    async def _read_body(self, receive: Receive) -> bytes:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if len(body) > self._max_body:
            raise BodyTooLarge(self._too_large)
        if not message.get("more_body", False):
            return body  # the usual case: the whole body came in one piece
        chunks = [body]
        size = len(body)
        try:
            async with asyncio.timeout(self._body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self._max_body:
                        raise BodyTooLarge(self._too_large)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise BodyTimeout(f"body not received within {self._body_timeout}s") from None


def _scan_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int, int]:
    """``(signature, how many signature headers, declared length or -1)`` in one pass."""
    claimed: str | None = None
    claims = 0
    declared = -1
    for name, value in headers:
        if name == _SIGNATURE:
            claimed = value.decode("latin-1")
            claims += 1
        elif name == _CONTENT_LENGTH and value.isdigit():
            declared = int(value)
    return claimed, claims, declared


def content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The declared length of a body, or -1."""
    return _scan_headers(headers)[2]


def _stored_answer(written: Written) -> tuple[Answer, bytes]:
    """The answer for a stored event (202) or a redelivery (200), and the entry id it names."""
    is_new, entry_id = written
    # Entry ids are ASCII digits and a dash: no JSON escaping is needed.
    if is_new:
        body = _QUEUED + entry_id + _END
        return Answer(202, (_JSON, (b"content-length", b"%d" % len(body))), body, "queued"), entry_id
    body = _DUPLICATE + entry_id + _END
    return Answer(200, (_JSON, (b"content-length", b"%d" % len(body))), body, "duplicate"), entry_id


def openapi(schema: dict[str, Any]) -> None:
    """Describe ``POST /webhook`` in an OpenAPI document built by FastAPI (which cannot see it)."""
    header = {
        "name": signature.HEADER,
        "in": "header",
        "required": True,
        "description": "Hex HMAC-SHA256 of the raw body under the listing's secret",
        "schema": {"type": "string"},
    }
    describe(schema, PATH, "Receive a signed Sphere event", "webhook", [VoteAdd, ReviewAdd, Event], [header])


def describe(
    schema: dict[str, Any],
    path: str,
    summary: str,
    operation_id: str,
    models: Sequence[type[BaseModel]],
    headers: list[dict[str, Any]],
) -> None:
    """Add a webhook route taking `models`, signed in `headers`, to an OpenAPI document."""
    keys, defs = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(defs.get("$defs", {}))
    components["WebhookError"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "detail": {}},
    }
    stored = {
        "type": "object",
        "required": ["status", "id"],
        "properties": {"status": {"type": "string"}, "id": {"type": "string"}},
    }

    def error(description: str) -> dict[str, Any]:
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookError"}}}
        return {"description": description, "content": content}

    unavailable = error("Redis is unavailable (or an unexpected failure): deliver again later")
    unavailable["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    schema.setdefault("paths", {})[path] = {
        "post": {
            "summary": summary,
            "operationId": operation_id,
            "parameters": headers,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"anyOf": [keys[(model, "validation")] for model in models]}
                    }
                },
            },
            "responses": {
                "202": {"description": "Stored", "content": {"application/json": {"schema": stored}}},
                "200": {
                    "description": "A redelivery within the dedupe window; `id` is the original entry",
                    "content": {"application/json": {"schema": stored}},
                },
                "400": error("The body is not a JSON object"),
                "401": error("Missing, malformed or wrong signature"),
                "408": error("The body was not received in time"),
                "413": error("The body is over the limit"),
                "422": error("A known event type with invalid fields"),
                "503": unavailable,
            },
        }
    }
