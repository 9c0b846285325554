"""Drive the edge's ASGI app in-process, lifespan included, with exactly the messages a test chooses.

Faster than HTTP (thousands of fuzz examples in seconds) and freer: headers may repeat, a body may
come in any number of pieces. `lifespan` speaks the ASGI lifespan protocol to the app itself, as
uvicorn does, so the Redis client and the ingest writer are the real ones (httpx's ASGITransport
runs no lifespan, which would leave the edge answering 503 to everything).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp

Message = MutableMapping[str, Any]
Headers = Sequence[tuple[bytes, bytes]]

CALL_TIMEOUT = 10.0
"""No request may take longer in-process; a hang is a failure, not a stuck test run."""


@asynccontextmanager
async def lifespan(app: ASGIApp, wait: float = 10.0) -> AsyncIterator[None]:
    """Run the app's start-up, yield, then its shut-down, over the ASGI lifespan protocol."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.3"}, "state": {}}

    async def run() -> None:
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(run())

    async def expect(wanted: str) -> None:
        getter = asyncio.create_task(outbox.get())
        done, _ = await asyncio.wait({getter, task}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            if task in done:
                task.result()  # raises what the app raised
            raise RuntimeError(f"no {wanted} from the app within {wait}s")
        message = getter.result()
        if message["type"] != wanted:
            raise RuntimeError(f"the app answered {message!r}, not {wanted}")

    await inbox.put({"type": "lifespan.startup"})
    await expect("lifespan.startup.complete")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await expect("lifespan.shutdown.complete")
        await task


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def http_scope(
    method: str, path: str, headers: Headers, client: tuple[str, int] = ("127.0.0.1", 40000)
) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it (header names lowercase, as ASGI requires)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower(), value) for name, value in headers],
        "client": client,
        "server": ("127.0.0.1", 3266),
        "state": {},
    }


async def request(
    app: ASGIApp,
    headers: Headers,
    chunks: Sequence[bytes] = (b"",),
    *,
    method: str = "POST",
    path: str = "/webhook",
    client: tuple[str, int] = ("127.0.0.1", 40000),
) -> Reply:
    """One request whose body arrives in `chunks` (one ``http.request`` message each).

    Fails if the app raises (uvicorn would answer 500 and log it), sends anything but one
    response start and a complete body, or takes longer than `CALL_TIMEOUT`.
    """
    pending = list(chunks) or [b""]
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending)}
        return {"type": "http.disconnect"}  # what uvicorn says once the body was read and answered

    async def send(message: Message) -> None:
        sent.append(message)

    async with asyncio.timeout(CALL_TIMEOUT):
        await app(http_scope(method, path, headers, client), receive, send)

    assert sent and sent[0]["type"] == "http.response.start", sent
    assert all(m["type"] == "http.response.body" for m in sent[1:]), sent
    assert sent[-1].get("more_body", False) is False, "the response was never finished"
    return Reply(
        status=sent[0]["status"],
        headers=list(sent[0].get("headers", [])),
        body=b"".join(m.get("body", b"") for m in sent[1:]),
    )
