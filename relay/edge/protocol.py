"""The HTTP protocol the edge runs under uvicorn: httptools, plus a deadline and a size bound on
every request head.

How and why, with the uvicorn internals it stands on: docs/INTERNALS.md, "relay/edge/protocol.py".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

_BOUNDS_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
)
"""uvicorn's protocol methods `EdgeHttpProtocol` extends to bound request heads (docs/INTERNALS.md)."""


def bounds_unsupported_reason() -> str | None:
    """Why the installed uvicorn's httptools protocol cannot take the head bounds, or None."""
    missing = [name for name in _BOUNDS_METHODS if not callable(getattr(HttpToolsProtocol, name, None))]
    return f"HttpToolsProtocol has no {', '.join(missing)}" if missing else None


HEAD_TIMEOUT = 10.0
"""Seconds a client has to send a request's line and headers, counted from the connection's
opening or from the first byte of the request. Sphere sends a whole request in one go."""

MAX_HEAD_BYTES = 16384
"""Bytes a request's line and headers may take (the limit uvicorn's h11 protocol applies too)."""

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: 28\r\n"
    b"connection: close\r\n\r\n"
    b'{"error":"header_too_large"}'
)


class OneWriteTransport:
    """A response's view of its connection: its head waits for the first write that follows it.

    Only a final response's status line and headers are held (a ``1xx`` is interim and must reach
    the client at once); the next write, `flush` or `close` sends them, joined to that write's data
    if any. Everything else is the connection's own transport.
    """

    __slots__ = ("_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head = b""

    def write(self, data: bytes) -> None:
        if self._head:
            data, self._head = self._head + data, b""
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 1"):
            self._head = data
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head:
            self._transport.write(self._head)
            self._head = b""

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class EdgeHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size bound on each request head.

    Cheap per request, since the edge's CPU budget is tight: one timer per connection, not per
    request (starting and cancelling a timer costs more than the rest of this class together).
    A request only notes when the next head may begin (when the connection opens, and when the
    previous request's body is complete); the timer, when it fires, closes the connection if that
    head is overdue, and otherwise sleeps until it could be.
    """

    _timer: asyncio.TimerHandle | None = None
    _head_since: float | None = None  # loop time from which a head is awaited; None while in a body
    _head_bytes = 0
    _tail = b""  # the last bytes of the head so far: its end may straddle two reads
    _in_body = False  # between the end of a head and the end of its body

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_since = self.loop.time()
        self._timer = self.loop.call_later(HEAD_TIMEOUT, self._check_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_body:  # a head arriving (a body's bytes are not counted)
            size = self._head_bytes + len(data)
            if size > MAX_HEAD_BYTES and self._head_ends_past_limit(data):
                self._close(_TOO_LARGE)
                return
            self._head_bytes = size
            self._tail = data[-3:]
        super().data_received(data)  # may complete the head (and its body, and the next head...)

    def on_headers_complete(self) -> None:
        self._head_since = None
        self._in_body = True
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # the request's, just made
            cycle.transport = OneWriteTransport(self.transport)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        # A response with no body to write (HEAD, or an empty one) ends here: its head goes now.
        cycle = self.cycle
        if cycle is not None and isinstance(cycle.transport, OneWriteTransport):
            cycle.transport.flush()
        super().on_response_complete()

    def on_message_complete(self) -> None:
        # The next head is awaited from now: pipelined right behind, or after the answer (an idle
        # kept-alive connection is closed sooner by uvicorn's --timeout-keep-alive anyway).
        self._in_body = False
        self._head_since = self.loop.time()
        self._head_bytes = 0
        self._tail = b""
        super().on_message_complete()

    def _head_ends_past_limit(self, data: bytes) -> bool:
        # Only when a read takes the head so far past the limit, which a usual request (head and
        # body in one read) does only when its body is large: then find where the head ends.
        end = (self._tail + data).find(b"\r\n\r\n")
        return end == -1 or self._head_bytes - len(self._tail) + end + 4 > MAX_HEAD_BYTES

    def _check_deadline(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        since = self._head_since
        if since is None and self._in_body and self.cycle is not None and self.cycle.response_complete:
            # Answered before its body was read (a 405, a 413...): uvicorn still reads the rest to
            # reach the next request. The rest gets as long as a head, or a drip would hold the
            # connection for ever.
            since = self._head_since = now
        if since is not None and now - since >= HEAD_TIMEOUT:
            # DEBUG only: a flood of stalled connections must not become a flood of log lines.
            log.debug("closed a connection whose request did not arrive within %ss", HEAD_TIMEOUT)
            self._close()
            return
        due = HEAD_TIMEOUT if since is None else since + HEAD_TIMEOUT - now
        self._timer = self.loop.call_later(due, self._check_deadline)

    def _close(self, answer: bytes = b"") -> None:
        if not self.transport.is_closing():
            if answer:
                self.transport.write(answer)
            self.transport.close()


_told = False


class _PlainHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's own httptools protocol, for a uvicorn that no longer fits `EdgeHttpProtocol`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        global _told
        if not _told:
            _told = True
            log.warning(
                "request heads are not bounded: this uvicorn does not fit relay.edge.protocol (%s); "
                "install the uvicorn pyproject.toml allows",
                _BOUNDS_UNSUPPORTED,
            )
        super().connection_made(transport)


_BOUNDS_UNSUPPORTED = bounds_unsupported_reason()
if _BOUNDS_UNSUPPORTED is not None:  # the start-up check's fallback: run as plain uvicorn, and say so
    EdgeHttpProtocol = _PlainHttpToolsProtocol  # type: ignore[misc,assignment]
