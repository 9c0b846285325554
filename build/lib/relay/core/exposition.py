"""``GET /metrics`` on an address of its own, answered by the process's event loop.

The workers serve their metrics this way, and so does the edge when ``RELAY_METRICS`` names a port.
A small HTTP/1.1 responder on `asyncio.start_server` (one request per connection) rather than
prometheus-client's `start_http_server`, whose thread takes up to half a second to stop: here
closing is immediate, and the numbers are read on the thread that writes them, between two events.
prometheus-client still does the real work: content negotiation and the exposition formats.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Sequence
from functools import partial
from http import HTTPStatus

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

PATH = "/metrics"
MAX_HEAD_BYTES = 16384
"""A request head longer than this is dropped unanswered; Prometheus sends a few hundred bytes."""
READ_TIMEOUT_SECONDS = 10.0


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """`registry` in the format the ``Accept`` header asks for: ``(body, content type)``."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def answer(registry: CollectorRegistry, head: bytes) -> bytes:
    """The whole HTTP response to a request `head` (request line and headers, CRLF-separated)."""
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _response(HTTPStatus.BAD_REQUEST)
    method, target, _ = parts
    if target.partition("?")[0] != PATH:
        return _response(HTTPStatus.NOT_FOUND)
    if method not in ("GET", "HEAD"):
        return _response(HTTPStatus.METHOD_NOT_ALLOWED, extra="Allow: GET, HEAD\r\n")
    accept = None
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "accept":
            accept = value.strip()
    body, content_type = render(registry, accept)
    return _response(HTTPStatus.OK, body, content_type, send_body=method == "GET")


def _response(
    status: HTTPStatus,
    body: bytes | None = None,
    content_type: str = "text/plain; charset=utf-8",
    *,
    extra: str = "",
    send_body: bool = True,
) -> bytes:
    if body is None:
        body = f"{status.phrase}\n".encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (body if send_body else b"")


async def _handle(
    registry: CollectorRegistry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(answer(registry, head[:-4]))
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        pass  # the scraper left, or sent something that is not an HTTP request head
    except Exception:
        log.exception("could not answer a metrics request")
    finally:
        writer.close()


class MetricsServer:
    """A listening metrics endpoint; `close` it at shutdown."""

    def __init__(self, server: asyncio.Server, host: str, port: int) -> None:
        self._server = server
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


async def serve(registry: CollectorRegistry, host: str, ports: Sequence[int]) -> MetricsServer:
    """Serve `registry` at ``/metrics`` on the first of `ports` free on `host`.

    Raises `OSError` when every one is taken (the error of the last one tried). With several ports
    (workers sharing a host), each is bound without ``SO_REUSEADDR``: with it, two processes starting
    at the same moment could both bind the same port (seen with uvloop), and one would never be
    scraped. A single, configured port keeps it, so a restart binds again at once.
    """
    error: OSError | None = None
    exclusive = len(ports) > 1
    for port in ports:
        try:
            server = await asyncio.start_server(
                partial(_handle, registry), host, port, limit=MAX_HEAD_BYTES, reuse_address=not exclusive
            )
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            error = exc
            continue
        return MetricsServer(server, host, port)
    raise error or OSError(errno.EINVAL, "no port to listen on")
