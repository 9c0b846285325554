"""The edge's log of refused requests, which ``relay rejected`` shows.

Every request ``POST /webhook`` answers with a 4xx is counted in ``relay:rejected:count``, and up to
`RECORDS_PER_SECOND` of them (with bursts of `BURST`) are also recorded in the stream
``relay:rejected``: when, why (the answer's error code), the status, the bytes received, the source
address, the headers, the first `BODY_HEAD_BYTES` bytes of the body, and the sender (``source``, absent
for Sphere's ``/webhook``). The stream is capped
(``XADD MAXLEN ~`` `MAXLEN`), so a flood of forgeries cannot grow it, and the rate bound means such
a flood costs Redis a few writes a second, whatever its size.

What a record never holds: ``Authorization``, ``Proxy-Authorization`` and ``Cookie`` headers are
dropped, and every sender's signature header keeps only its first characters (enough to tell two
senders apart, useless to replay). The relay's secret is never in a request, so it cannot leak from here.

Recording never slows or breaks an answer: `RejectionRecorder.record` is called after the answer
is sent, does no I/O itself, and starts at most `MAX_IN_FLIGHT` fire-and-forget writes on the
edge's Redis client, each bounded by the Redis timeout; a failed write is logged and forgotten. A
503 (Redis unavailable) is not recorded: there is nowhere to record it.

The pure parts (`TokenBucket`, `clean_headers`, `build_record`, `Rejection.from_entry`) are tested
without a server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from relay.core.keys import REJECTED_COUNT, REJECTED_STREAM, EntryFields
from relay.core.senders import standard, topgg
from relay.edge.signature import HEADER as SIGNATURE_HEADER

log = logging.getLogger(__name__)

RECORDS_PER_SECOND = 10.0
"""Refusals recorded per second at most, in the long run; the others are only counted."""
BURST = 20
"""Refusals recorded at once after a quiet spell."""
MAXLEN = 1000
"""``relay:rejected`` keeps about this many records (``MAXLEN ~``: Redis trims whole nodes, cheaply)."""
BODY_HEAD_BYTES = 256
"""How much of a refused body is kept: enough to see what it was, not a copy of a large payload."""
MAX_IN_FLIGHT = 4
"""Record writes pending at once; beyond that (Redis is slow) a refusal is only counted."""
COUNT_FLUSH_SECONDS = 1.0
"""Refusals that were only counted are added to ``relay:rejected:count`` this long after the first."""

MAX_HEADERS = 32
MAX_HEADER_CHARS = 200
SIGNATURE_CHARS = 12
CLIPPED_HEADERS = frozenset({SIGNATURE_HEADER.lower(), topgg.SIGNATURE_HEADER, standard.SIGNATURE_HEADER})
"""Signatures: a whole one could be replayed (top.gg's and Standard Webhooks' for 5 minutes)."""
DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Credentials a client may send by habit; a log of strangers' requests has no use for them."""

# Fields of a `relay:rejected` entry. Values are bytes in Redis; `received_ms` is ms since the epoch.
F_RECEIVED = "received_ms"
F_STATUS = "status"
F_REASON = "reason"
F_SIZE = "size"
F_CLIENT = "client"
F_HEADERS = "headers"
F_BODY_HEAD = "body_head"
F_SOURCE = "source"
"""The sender whose route refused it; absent for Sphere's ``/webhook`` (records older than senders too)."""
F_SKIPPED = "skipped"
"""Refusals between the previous record and this one that were counted but not recorded."""

Headers = list[tuple[str, str]]


class TokenBucket:
    """At most `rate` takes per second in the long run, `burst` at once. `now` is any monotonic clock."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = now

    def take(self, now: float) -> bool:
        """Take a token if one is there; refill for the time since the last call first."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def clean_headers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The request's headers as they may be kept: credentials dropped, the signature cut short,
    every value clipped, at most `MAX_HEADERS` of them (repeated headers stay repeated)."""
    kept: Headers = []
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        if name in DROPPED_HEADERS:
            continue
        value = raw_value.decode("latin-1")
        if name in CLIPPED_HEADERS and len(value) > SIGNATURE_CHARS:
            value = f"{value[:SIGNATURE_CHARS]}… ({len(value)} chars)"
        kept.append((_clip(name, 64), _clip(value, MAX_HEADER_CHARS)))
        if len(kept) == MAX_HEADERS:
            break
    return kept


def client_address(scope: Mapping[str, Any]) -> str:
    """``host:port`` of the peer (a reverse proxy's, behind one: see ``x-forwarded-for``), or ``""``."""
    client = scope.get("client")
    if not client:
        return ""
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def build_record(
    *,
    received_ms: int,
    status: int,
    reason: str,
    size: int,
    client: str,
    headers: Headers,
    body: bytes,
    skipped: int = 0,
    source: str = "",
) -> dict[str, str | bytes | int]:
    """The fields of one ``relay:rejected`` entry."""
    fields: dict[str, str | bytes | int] = {
        F_RECEIVED: received_ms,
        F_STATUS: status,
        F_REASON: reason,
        F_SIZE: size,
        F_CLIENT: client,
        F_HEADERS: json.dumps(headers, ensure_ascii=False, separators=(",", ":")),
        F_BODY_HEAD: body[:BODY_HEAD_BYTES],
        F_SKIPPED: skipped,
    }
    if source:
        fields[F_SOURCE] = source
    return fields


@dataclass(frozen=True, slots=True)
class Rejection:
    """One entry of ``relay:rejected``, as ``relay rejected`` reads it."""

    id: str
    received_ms: int
    status: int
    reason: str
    size: int
    client: str
    headers: Headers
    body_head: bytes
    skipped: int
    source: str = "sphere"
    """The sender whose route refused the request."""

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> Rejection:
        read = EntryFields(fields)
        text, number = read.text, read.number
        try:
            headers = [(str(name), str(value)) for name, value in json.loads(text(F_HEADERS) or "[]")]
        except (ValueError, TypeError):
            headers = []
        return cls(
            id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            received_ms=number(F_RECEIVED),
            status=number(F_STATUS),
            reason=text(F_REASON),
            size=number(F_SIZE),
            client=text(F_CLIENT),
            headers=headers,
            body_head=read.raw(F_BODY_HEAD),
            skipped=number(F_SKIPPED),
            source=text(F_SOURCE) or "sphere",
        )


class RejectionRecorder:
    """Counts every refusal and records some, from the edge process, without ever waiting on Redis.

    `client` is the edge's own Redis client; `timeout` bounds each write.
    """

    def __init__(
        self,
        client: Redis,
        *,
        timeout: float,
        rate: float = RECORDS_PER_SECOND,
        burst: int = BURST,
        maxlen: int = MAXLEN,
        max_in_flight: int = MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._maxlen = maxlen
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock())
        self._uncounted = 0  # refusals not yet added to the count key
        self._skipped = 0  # refusals not recorded since the last record
        self._tasks: set[asyncio.Task[None]] = set()
        self._count_flush: asyncio.TimerHandle | None = None
        self._closed = False

    def record(
        self,
        scope: Mapping[str, Any],
        status: int,
        reason: str,
        size: int,
        body: bytes,
        received_ms: int,
        source: str = "",
    ) -> None:
        """Count one refusal and, within the rate and the writes in flight, record it (`source`: the
        sender whose route refused it, empty for Sphere's). Never raises."""
        try:
            self._uncounted += 1
            if self._closed:
                return
            if len(self._tasks) >= self._max_in_flight or not self._bucket.take(self._clock()):
                self._skipped += 1
                self._schedule_count_flush()
                return
            fields = build_record(
                received_ms=received_ms,
                status=status,
                reason=reason,
                size=size,
                client=client_address(scope),
                headers=clean_headers(scope.get("headers", ())),
                body=body,
                skipped=self._skipped,
                source=source,
            )
            count, self._uncounted, self._skipped = self._uncounted, 0, 0
            self._start(self._write(fields, count))
        except Exception:  # a log of refusals must never turn into a failure of the edge
            log.exception("could not record a refused request")

    async def flush(self) -> None:
        """Wait for the writes in flight (each is bounded by the timeout)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Record nothing more; wait for the writes in flight, then add the refusals only counted."""
        self._closed = True
        if self._count_flush is not None:
            self._count_flush.cancel()
            self._count_flush = None
        await self.flush()
        if self._uncounted:
            count, self._uncounted = self._uncounted, 0
            await self._add_count(count)

    def _start(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_count_flush(self) -> None:
        if self._count_flush is None:
            self._count_flush = asyncio.get_running_loop().call_later(COUNT_FLUSH_SECONDS, self._flush_count)

    def _flush_count(self) -> None:
        self._count_flush = None
        if self._uncounted and not self._closed and len(self._tasks) < self._max_in_flight:
            count, self._uncounted = self._uncounted, 0
            self._start(self._add_count(count))
        elif self._uncounted and not self._closed:
            self._schedule_count_flush()  # writes are backed up: try again later, still one at a time

    async def _write(self, fields: dict[str, str | bytes | int], count: int) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._client.pipeline(transaction=False)
                pipe.xadd(REJECTED_STREAM, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
                pipe.incrby(REJECTED_COUNT, count)
                await pipe.execute()
        except Exception as exc:
            self._uncounted += count  # counted with the next write instead
            log.warning("could not record a refused request: %r", exc)

    async def _add_count(self, count: int) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.incrby(REJECTED_COUNT, count)
        except Exception as exc:
            log.warning("could not count %d refused request(s): %r", count, exc)


async def recent(redis: Redis, count: int) -> list[Rejection]:
    """The last `count` records, newest first."""
    entries = await redis.xrevrange(REJECTED_STREAM, count=count)
    return [Rejection.from_entry(entry_id, fields) for entry_id, fields in entries]


async def totals(redis: Redis) -> tuple[int, int]:
    """``(refused in all, records kept)``. The first counts every refusal the edges answered."""
    pipe = redis.pipeline(transaction=False)
    pipe.get(REJECTED_COUNT)
    pipe.xlen(REJECTED_STREAM)
    refused, kept = await pipe.execute()
    return int(refused or 0), int(kept)
