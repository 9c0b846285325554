"""Hand-made HTTP/1.1 over plain sockets, for clients no HTTP library would be: idle, dripping,
oversized, or sending requests as fast as a loop can."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time

from tests.conftest import SECRET


def signature(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_request(body: bytes, sig: str, *, extra: bytes = b"") -> bytes:
    """A complete ``POST /webhook`` with a Content-Length, ready to send."""
    return (
        b"POST /webhook HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nX-Sphere-Signature: %s\r\n%s\r\n%s" % (len(body), sig.encode(), extra, body)
    )


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(url)), timeout=timeout)


def read_answer(sock: socket.socket) -> bytes:
    """Whatever the server sends until it has sent a whole head, or closes (b"" if it closed first)."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        data = sock.recv(65536)
        if not data:
            break
        reply += data
    return reply


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One whole answer with a Content-Length: ``(head, body)``."""
    data = read_answer(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return head, body


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` (EOF or reset) within `within` seconds, having sent nothing."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def drip(sock: socket.socket, data: bytes, every: float, until: float) -> bytes | None:
    """Send `data` a byte at a time, `every` seconds, until the server answers or `until` passes.

    Returns what the server sent, b"" if it closed the connection without a word, or None if the
    connection was still open and silent at `until`.
    """
    sock.setblocking(False)
    try:
        for byte in data:
            try:
                return sock.recv(65536)  # an answer, or b"" for a close
            except BlockingIOError:
                pass
            except ConnectionResetError:
                return b""
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                return b""
            if time.monotonic() > until:
                break
            time.sleep(every)
    finally:
        sock.setblocking(True)
    sock.settimeout(max(0.1, until - time.monotonic()))
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""
    except TimeoutError:
        return None


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request on a kept-alive connection and read its whole answer; return the status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])
