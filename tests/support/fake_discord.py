"""A loopback HTTP server that answers the Discord calls the example handlers make, as Discord does.

Channel webhooks (``POST /api/webhooks/<id>/<token>``: 204, or 200 and the message with
``?wait=true``) and member roles (``PUT``/``DELETE /api/v10/guilds/<g>/members/<u>/roles/<r>``: 204
with a valid ``Authorization: Bot <token>``, 401 without). A route listed in `rate_limit_first` answers
its first call with 429, a JSON body with ``retry_after`` and a ``Retry-After`` header, as Discord does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK = re.compile(r"^/api/webhooks/(\d+)/([\w-]+)$")
ROLE = re.compile(r"^/api/v10/guilds/(\d+)/members/(\d+)/roles/(\d+)$")
BOT_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Gx7Qm2.k7Qm2vX9pL4rT8wZ3nB6yH1cQ"
RETRY_AFTER = 0.25


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    route: str
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str]


class FakeDiscord:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.rate_limit_first: set[str] = set()
        self.status: dict[str, int] = {}
        """A status to answer on a route instead of the usual one (e.g. ``{"role": 403}``)."""
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path, _, query = self.path.partition("?")
                route = "webhook" if WEBHOOK.match(path) else "role" if ROLE.match(path) else "unknown"
                status, payload, headers = fake._decide(self.command, route, query, body, dict(self.headers))
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with fake._lock:
                    fake.calls.append(Call(self.command, path, route, status, body, dict(self.headers)))

            do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.webhook_url = f"{self.base}/api/webhooks/123456789012345678/k7Qm2vX9pL4rT8wZ3nB6yH1c"
        self.api_url = f"{self.base}/api/v10"

    def _decide(
        self, method: str, route: str, query: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            if route in self.rate_limit_first and not any(c.route == route for c in self.calls):
                limited = {
                    "message": "You are being rate limited.",
                    "retry_after": RETRY_AFTER,
                    "global": False,
                }
                return 429, limited, {"Retry-After": "1", "X-RateLimit-Scope": "user"}
        if route in self.status:
            return self.status[route], {"message": "refused", "code": 0}, {}
        if route == "webhook" and method == "POST":
            if "wait=true" in query:
                return (
                    200,
                    {"id": "1", "content": body.get("content", ""), "embeds": body.get("embeds", [])},
                    {},
                )
            return 204, None, {}
        if route == "role" and method in ("PUT", "DELETE"):
            if headers.get("Authorization") != f"Bot {BOT_TOKEN}":
                return 401, {"message": "401: Unauthorized", "code": 0}, {}
            return 204, None, {}
        return 404, {"message": "404: Not Found", "code": 0}, {}

    def answered(self, route: str, status: int | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.route == route and (status is None or c.status == status)]


@contextmanager
def fake_discord() -> Iterator[FakeDiscord]:
    fake = FakeDiscord()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
