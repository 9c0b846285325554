"""``POST /webhook`` answered straight from the HTTP protocol: no task, no ASGI messages.

How and why, with the uvicorn internals it stands on: docs/INTERNALS.md, "relay/edge/direct.py".
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http import httptools_impl

from relay.edge.errors import Answer
from relay.edge.ingest import Written
from relay.edge.webhook import WebhookEndpoint, refusal, stored_answer

log = logging.getLogger(__name__)

STATUS_LINE: dict[int, bytes] = getattr(httptools_impl, "STATUS_LINE", {})
"""uvicorn's status lines, which a direct answer must match byte for byte (empty in a uvicorn without them)."""

_PROTOCOL_METHODS = (
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "_unset_keepalive_if_required",
    "_start_asgi_task",
)
_CYCLE_PARAMETERS = (
    "scope",
    "transport",
    "flow",
    "logger",
    "access_logger",
    "access_log",
    "default_headers",
    "message_event",
    "expect_100_continue",
    "keep_alive",
    "on_response",
)


def unsupported_reason() -> str | None:
    """Why the installed uvicorn cannot take direct answers, or None when it can.

    The direct path stands in for parts of uvicorn's httptools protocol that are not public API (the
    list above, ``STATUS_LINE``, ``RequestResponseCycle``'s parameters). A uvicorn that changed them
    must not break the edge: `relay.edge.protocol.EdgeHttpProtocol` then answers every request through
    ASGI, as plain uvicorn does, and says so once in the log. A check of names and signatures, made
    once; the tests (tests/edge/test_direct.py) compare the answers themselves.
    """
    protocol = httptools_impl.HttpToolsProtocol
    missing = [name for name in _PROTOCOL_METHODS if not callable(getattr(protocol, name, None))]
    if missing:
        return f"HttpToolsProtocol has no {', '.join(missing)}"
    if not all(status in STATUS_LINE for status in (200, 202, 400, 401, 413, 422, 503)):
        return "httptools_impl.STATUS_LINE is missing or incomplete"
    parameters = tuple(inspect.signature(httptools_impl.RequestResponseCycle).parameters)
    if parameters != _CYCLE_PARAMETERS:
        return f"RequestResponseCycle takes ({', '.join(parameters)})"
    return None


class _NoEvent:
    """uvicorn sets ``cycle.message_event`` when data arrives or the client leaves; nobody waits."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class DirectCycle:
    """One ``POST /webhook`` request answered without a task (see the module docstring)."""

    __slots__ = (
        "body",
        "claimed",
        "claims",
        "default_headers",
        "disconnected",
        "endpoint",
        "event_type",
        "keep_alive",
        "on_response",
        "received_ms",
        "response_complete",
        "scope",
        "started",
        "transport",
    )

    message_event = _NO_EVENT

    def __init__(
        self,
        endpoint: WebhookEndpoint,
        scope: Any,  # uvicorn's HTTPScope, which the endpoint reads as a Starlette Scope
        transport: asyncio.Transport,
        default_headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        on_response: Callable[[], None],
    ) -> None:
        self.started = time.perf_counter()
        self.received_ms = time.time_ns() // 1_000_000
        self.endpoint = endpoint
        self.scope = scope
        self.transport = transport
        self.default_headers = default_headers
        self.keep_alive = keep_alive
        self.on_response = on_response
        self.body = b""
        self.event_type: str | None = None
        self.disconnected = False
        self.response_complete = False
        self.claimed: str | None = None
        self.claims = 0

    def start(self) -> None:
        """The head is complete (call once the protocol holds this cycle): check what it declares."""
        try:
            self.claimed, self.claims = self.endpoint.read_head(self.scope["headers"])
        except Exception as exc:  # a declared length over the limit: answered before the body
            self.answer(refusal(exc), None)

    def receive_body(self, chunk: bytes) -> None:
        """Part of the body arrived (the parser's ``on_body``)."""
        if self.response_complete:
            return  # answered already (413): the rest is read only to reach the next request
        body = self.body + chunk
        if len(body) > self.endpoint.max_body:
            self.body = b""  # as the ASGI endpoint: a body over the limit is neither kept nor logged
            self.answer(refusal(self.endpoint.too_large()), None)
            return
        self.body = body

    def gone(self) -> None:
        """The connection closed before the body was complete: nobody to answer."""
        self.response_complete = True
        self.endpoint.finish_gone(len(self.body), None, self.started)

    def body_complete(self) -> None:
        """The whole body is here (the parser's ``on_message_complete``): check it and store it."""
        if self.response_complete:
            return
        try:
            self.event_type = self.endpoint.store(
                self.claimed, self.claims, self.body, self.received_ms, self
            )
        except Exception as exc:
            self.answer(refusal(exc), None)

    # The writer's `relay.edge.ingest.Waiter`: told from the flush itself, so the answer goes out now
    # rather than on the event loop's next pass (after every read already waiting).

    def done(self) -> bool:
        return self.response_complete

    def set_result(self, written: Written, /) -> None:
        try:
            answer, entry_id = stored_answer(written)
        except Exception as exc:  # a bug: 503, never a hang
            answer, entry_id = refusal(exc), None
        self.answer(answer, entry_id)

    def set_exception(self, exception: BaseException, /) -> None:
        self.answer(refusal(exception), None)  # type: ignore[arg-type]

    def answer(self, answer: Answer, entry_id: bytes | None) -> None:
        """Write `answer` in one piece, end the response as uvicorn would, then count and log it."""
        self.response_complete = True
        if not self.disconnected and not self.transport.is_closing():
            try:
                self.transport.write(self._encode(answer))
                if not self.keep_alive:
                    self.transport.close()
            except Exception:  # never leave the connection hanging on a bug of ours
                log.exception("could not write a webhook answer; closing the connection")
                self.transport.close()
        try:  # from the parser's callbacks or the writer's flush: a bug here must break neither
            self.on_response()
            self.endpoint.finish(
                self.scope, answer, self.body, self.event_type, entry_id, self.started, self.received_ms
            )
        except Exception:
            log.exception("could not finish a webhook answer")

    def _encode(self, answer: Answer) -> bytes:
        parts = [STATUS_LINE[answer.status]]
        for name, value in self.default_headers:
            parts += (name, b": ", value, b"\r\n")
        for name, value in answer.headers:
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", answer.body)
        return b"".join(parts)
