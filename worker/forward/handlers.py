"""The built-in forwarding handlers: one per destination, registered like any ``@on("*")`` handler.

They share one ``httpx.AsyncClient``, opened and closed by the worker's lifecycle (`Forwarding`);
each destination's ``concurrency`` (``RELAY_FORWARD_CONCURRENCY``) is the registry's own per-handler
limit. A failure raises what any handler raises: `Permanent` for a refusal, ``Retry`` for a delay the
receiver asked for, `DeliveryFailed` (retried on the handler's backoff) for the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from arq.worker import Retry
from standardwebhooks import Webhook

from relay.core.events import Payload
from relay.core.settings import Settings
from worker.checks import TasksError
from worker.errors import Permanent
from worker.forward import message, response
from worker.forward.destination import Destination
from worker.registry import DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF, WILDCARD, Handler, Registry

HANDLER_MARGIN_SECONDS = 5.0
"""The handler's own timeout is the attempt's plus this, so the attempt's clearer error comes first."""

USER_AGENT = "sphere-relay-forward"

DRAIN_BYTES = 65536
"""The most of an answer's body read (to keep its connection); a receiver's answer is usually empty."""


class DeliveryFailed(Exception):
    """An attempt that may succeed later: no connection, no answer in time, or a 5xx."""


class DestinationRequestLines(logging.Filter):
    """Drops httpx's INFO line per request to a destination: it would print the URL, which may carry
    a token, once per event (the worker logs its own line per run, naming the destination's handler)."""

    def __init__(self, urls: Iterable[str]) -> None:
        super().__init__()
        self.urls = {str(httpx.URL(url)) for url in urls}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) > 1 and str(args[1]) in self.urls)


class Forwarding:
    """The HTTP client every forwarding handler of a worker process uses, born in ``on_startup``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: httpx.AsyncClient | None = None
        self.quiet = DestinationRequestLines(settings.forward_url)

    async def start(self) -> None:
        logging.getLogger("httpx").addFilter(self.quiet)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
        self.client = httpx.AsyncClient(
            timeout=self.settings.forward_timeout,
            limits=limits,
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )

    async def close(self) -> None:
        logging.getLogger("httpx").removeFilter(self.quiet)
        if self.client is not None:
            await self.client.aclose()
            self.client = None


class Forwarder:
    """One destination's handler: POST the event, signed, and judge the answer."""

    def __init__(self, destination: Destination, forwarding: Forwarding, secret: str) -> None:
        self.destination = destination
        self.forwarding = forwarding
        self.signer = Webhook(secret)
        self.timeout = forwarding.settings.forward_timeout

    async def __call__(self, ctx: dict[str, Any], event: Payload) -> None:
        client = self.forwarding.client
        if client is None:
            raise DeliveryFailed("the worker's HTTP client is not open (worker starting or stopping)")
        data = message.body(
            stored_type=ctx["event_type"],
            entry_id=ctx["event_id"],
            received_ms=ctx["received_ms"],
            event=event,
            payload=ctx["body"],
        )
        headers = message.signed_headers(self.signer, self.destination.webhook_id(ctx["event_id"]), data)
        try:
            async with asyncio.timeout(self.timeout):
                status, retry_after, head = await self._post(client, data, headers)
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self.timeout:g}s (RELAY_FORWARD_TIMEOUT)") from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {str(exc) or 'connection failed'}") from exc
        verdict = response.judge(status, retry_after, head, now=time.time(), cap=DEFAULT_MAX_BACKOFF)
        if verdict.action == "delivered":
            return
        if verdict.action == "give_up":
            raise Permanent(verdict.reason)
        if verdict.action == "retry_after":
            # The handler keeps the registry's default schedule (`_handler`): a requested delay keeps to it.
            attempt = int(ctx.get("attempt", 1))
            wait = response.retry_after_wait(verdict.delay, attempt, DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF)
            raise Retry(defer=wait) from DeliveryFailed(verdict.reason)
        raise DeliveryFailed(verdict.reason)

    async def _post(
        self, client: httpx.AsyncClient, data: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None, bytes]:
        """Status, ``Retry-After`` and the first bytes of the body. A body read to its end lets the
        connection be reused; one longer than `DRAIN_BYTES` is cut off (and its connection closed)."""
        async with client.stream("POST", self.destination.url, content=data, headers=headers) as answer:
            head = b""
            read = 0
            async for chunk in answer.aiter_bytes():
                if len(head) < response.BODY_HEAD_BYTES:
                    head += chunk[: response.BODY_HEAD_BYTES - len(head)]
                read += len(chunk)
                if read > DRAIN_BYTES:
                    break
            return answer.status_code, answer.headers.get("retry-after"), head


def delivery_handlers(settings: Settings, forwarding: Forwarding) -> list[Handler]:
    """One handler per ``RELAY_FORWARD_URL`` destination, delivering through `forwarding`'s client."""
    if settings.forward_secret is None:
        return []
    secret = settings.forward_secret.get_secret_value()
    return [
        _handler(
            destination,
            Forwarder(destination, forwarding, secret),
            timeout=settings.forward_timeout + HANDLER_MARGIN_SECONDS,
            concurrency=settings.forward_concurrency,
        )
        for destination in map(Destination, settings.forward_url)
    ]


def listed_handlers(urls: Iterable[str]) -> list[Handler]:
    """The same handlers by name only, for tools that queue their jobs (``relay dlq replay``, the admin
    page) without sending anything themselves."""
    return [_handler(destination, _sent_by_workers) for destination in map(Destination, urls)]


async def _sent_by_workers(ctx: dict[str, Any], event: Payload) -> None:
    raise Permanent("forwarding runs in the workers, which have RELAY_FORWARD_SECRET")


def _handler(
    destination: Destination,
    func: Callable[..., Any],
    *,
    timeout: float = 15.0,
    concurrency: int | None = None,
) -> Handler:
    return Handler(
        name=destination.name,
        func=func,
        event_types=(WILDCARD,),
        timeout=timeout,
        future=True,
        concurrency=concurrency,
    )


def with_forwarding(registry: Registry, handlers: Iterable[Handler]) -> Registry:
    """A new registry: `registry`'s handlers, then `handlers` (`registry` itself is left as it was);
    `registry` itself when `handlers` is empty."""
    added = list(handlers)
    if not added:
        return registry
    combined = Registry()
    for handler in registry:
        combined.add(handler)
    for handler in added:
        if combined.get(handler.name) is not None:
            raise TasksError(
                [
                    f"handler {handler.name!r}: that name is a forwarding destination's (RELAY_FORWARD_URL); rename it"
                ]
            )
        combined.add(handler)
    return combined
