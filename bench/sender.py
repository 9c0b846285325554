"""A webhook sender that retries as top.gg v1 does, for measuring what a deploy of the edge loses.

top.gg v1 gives each attempt 5 s; a timeout, a refused or broken connection, or a 5xx is retried 3
times, about 1, 2 and 4 s after the failure; a 4xx is not retried. A vote whose 4 attempts all
fail is lost for good. Each attempt opens a connection of its own. It signs as Sphere does
(``X-Sphere-Signature``) or as top.gg v1 does (``x-topgg-signature: t=<unix>,v1=<hex>``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

ATTEMPT_TIMEOUT = 5.0
"""Seconds top.gg waits for an answer to one attempt."""
RETRY_DELAYS = (1.0, 2.0, 4.0)
"""Seconds before each of top.gg's 3 retries (2^N s)."""

Verdict = Literal["acknowledged", "retry", "refused"]
Scheme = Literal["sphere", "topgg"]

SPHERE_PATH = "/webhook"
TOPGG_PATH = "/webhook/topgg"


def verdict(status: int | None) -> Verdict:
    """What top.gg does after an attempt answered `status` (None: timeout or connection failure)."""
    if status is None or status >= 500:
        return "retry"
    if 200 <= status < 300:
        return "acknowledged"
    return "refused"  # 4xx (and anything else): top.gg does not retry


def sphere_vote(vote_id: str) -> bytes:
    """A VOTE_ADD whose user id is `vote_id`, so every vote of a run is a distinct event."""
    return json.dumps({"event": "VOTE_ADD", "guild_id": "338202622731485185", "user_id": vote_id}).encode()


def topgg_vote(vote_id: str) -> bytes:
    """A top.gg v1 ``vote.create`` whose ``data.id`` (top.gg's delivery id) is `vote_id`."""
    data = {
        "id": vote_id,
        "weight": 1,
        "created_at": "2026-12-06T20:00:00.000Z",
        "expires_at": "2026-12-07T08:00:00.000Z",
        "project": {"id": "803190510032756736", "type": "bot", "platform": "discord", "platform_id": "1"},
        "user": {
            "id": "160105994217586689",
            "platform_id": "160105994217586689",
            "name": "voter",
            "avatar_url": "",
        },
        "query": {},
    }
    return json.dumps({"type": "vote.create", "data": data}, separators=(",", ":")).encode()


def vote_key(scheme: Scheme, body: bytes) -> str:
    """The vote id a body of `sphere_vote` or `topgg_vote` carries (to find it in the stream)."""
    event = json.loads(body)
    return str(event["user_id"] if scheme == "sphere" else event["data"]["id"])


def sphere_headers(body: bytes, secret: str, now: float) -> dict[str, str]:
    return {"X-Sphere-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def topgg_headers(body: bytes, secret: str, now: float) -> dict[str, str]:
    stamp = str(int(now))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"x-topgg-signature": f"t={stamp},v1={digest}"}


SCHEMES: dict[Scheme, tuple[str, Callable[[str], bytes], Callable[[bytes, str, float], dict[str, str]]]] = {
    "sphere": (SPHERE_PATH, sphere_vote, sphere_headers),
    "topgg": (TOPGG_PATH, topgg_vote, topgg_headers),
}


def request_bytes(path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode() + b"\r\n" + body


def status_of(head: bytes) -> int | None:
    """The status code of a response's first line, or None if it is not one."""
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


@dataclass
class Delivery:
    """One vote's fate: the status of each attempt (None for a timeout or connection failure)."""

    key: str
    statuses: list[int | None] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    outcome: Verdict | Literal["lost"] = "lost"
    seconds: float = 0.0
    """From the first attempt to the answer that settled it (or to the last failure)."""


@dataclass
class Target:
    """Where votes go and how they are signed; `delays` and `timeout` are top.gg's unless a test
    shortens them."""

    host: str
    port: int
    scheme: Scheme
    secret: str
    delays: tuple[float, ...] = RETRY_DELAYS
    timeout: float = ATTEMPT_TIMEOUT

    async def attempt(self, body: bytes) -> tuple[int | None, str]:
        """One attempt: the status, or None and why (``refused``, ``timeout``, ``reset``...)."""
        path, _, headers = SCHEMES[self.scheme]
        request = request_bytes(
            path, f"{self.host}:{self.port}", body, headers(body, self.secret, time.time())
        )
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n")
                status = status_of(head)
                if status is None:
                    return None, "garbled"
                await reader.read()  # Connection: close; the body is not needed, the whole answer is
                return status, "answered"
        except TimeoutError:
            return None, "timeout"
        except ConnectionRefusedError:
            return None, "refused"
        except (ConnectionError, asyncio.IncompleteReadError):
            return None, "reset"  # accepted, then closed before a status line
        except OSError as error:
            return None, type(error).__name__
        finally:
            if writer is not None:
                writer.close()

    async def deliver(self, key: str) -> Delivery:
        """Send one vote as top.gg would: one attempt, then a retry after each of `delays`."""
        body = SCHEMES[self.scheme][1](key)
        delivery = Delivery(key)
        started = time.monotonic()
        for delay in (*self.delays, None):
            status, why = await self.attempt(body)
            delivery.statuses.append(status)
            delivery.seconds = time.monotonic() - started
            what = verdict(status)
            if what != "retry":
                delivery.outcome = what
                return delivery
            delivery.failures.append(why if status is None else str(status))
            if delay is None:
                return delivery  # lost: every attempt failed
            await asyncio.sleep(delay)
        return delivery


@dataclass
class Tally:
    """A run's deliveries, summed up."""

    deliveries: list[Delivery]

    @property
    def sent(self) -> int:
        return len(self.deliveries)

    def count(self, outcome: str) -> int:
        return sum(1 for delivery in self.deliveries if delivery.outcome == outcome)

    @property
    def retried(self) -> int:
        """Votes that needed more than one attempt."""
        return sum(1 for delivery in self.deliveries if len(delivery.statuses) > 1)

    @property
    def failures(self) -> Counter[str]:
        return Counter(why for delivery in self.deliveries for why in delivery.failures)

    def acknowledged_keys(self) -> set[str]:
        return {delivery.key for delivery in self.deliveries if delivery.outcome == "acknowledged"}

    @property
    def longest_wait(self) -> float:
        """The most seconds a vote waited for its acknowledgement (top.gg's last try is at ~7 s)."""
        return max((d.seconds for d in self.deliveries if d.outcome == "acknowledged"), default=0.0)

    @property
    def max_attempts(self) -> int:
        return max((len(delivery.statuses) for delivery in self.deliveries), default=0)


async def send_votes(target: Target, rate: float, duration: float, prefix: str) -> Tally:
    """Start `rate` votes a second for `duration` seconds, then wait until each is acknowledged,
    refused or lost (at most about 27 s more: 4 attempts of 5 s and 7 s of waits)."""
    started = time.monotonic()
    tasks: list[asyncio.Task[Delivery]] = []
    number = 0
    while (due := started + number / rate) < started + duration:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        tasks.append(asyncio.create_task(target.deliver(f"{prefix}{number:07d}")))
        number += 1
    return Tally(list(await asyncio.gather(*tasks)))
