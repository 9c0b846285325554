"""A destination for forwarded events: a real HTTP server (a thread of the test process) that records
every request and answers each as the test scripted it (a status, headers, a body, a stall)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stall: float = 0.0
    """Seconds to wait before answering (a receiver that hangs)."""


@dataclass(frozen=True)
class Received:
    at: float
    """time.monotonic() when the request's body had arrived."""
    headers: dict[str, str]
    body: bytes
    peer: int = 0
    """The client's port: the same for requests over one kept-alive connection."""

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Sink:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[Answer] = []
        """Answers for the next requests, in order; once used up, `default`."""
        self.default = Answer()
        self.lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def _next(self, request: Received) -> Answer:
        with self.lock:
            self.received.append(request)
            return self.script.pop(0) if self.script else self.default


@contextmanager
def forward_sink() -> Iterator[Sink]:
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver does

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = sink._next(Received(time.monotonic(), headers, body, self.client_address[1]))
            if answer.stall:
                time.sleep(answer.stall)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
