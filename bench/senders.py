"""The senders phase: Sphere's, top.gg's and Standard Webhooks' routes of one relay edge, side by side.

One edge serves all three routes (every sender on); wrk posts each sender's own signed votes to its
route, one route at a time, interleaved over rounds like the edge phase (`bench.edge`). Each run
reports requests/s and the edge's CPU per request, and the targets compare each route's CPU per
request with Sphere's, median round against median round. The requests are signed when the phase
starts: top.gg's and Standard Webhooks' timestamps must stay within the edge's 5 minutes.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from standardwebhooks import Webhook

from bench.load import Requests, Signer, WrkResult, run_wrk, write_records
from bench.pipeline import median_by
from bench.processes import RELAY_APP, ProcessGroup, Redis, start_uvicorn
from bench.store import Store
from relay.core.keys import EVENTS_STREAM
from relay.core.senders import topgg
from relay.edge.signature import HEADER

SOURCES = ("sphere", "topgg", "standard")
RATIO_LIMIT = 1.25
"""A route's CPU per request may be at most this times Sphere's (the senders issue: within 25%)."""

_SPHERE = b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"%s"}'
_TOPGG = json.dumps(
    {
        "type": "vote.create",
        "data": {
            "id": "%(id)s",
            "weight": 1,
            "created_at": "2026-02-09T00:47:14.2510149+00:00",
            "expires_at": "2026-02-09T12:47:14.2510149+00:00",
            "project": {
                "id": "803190510032756736",
                "type": "bot",
                "platform": "discord",
                "platform_id": "160105994217586689",
            },
            "query": {},
            "user": {
                "id": "%(id)s",
                "platform_id": "%(id)s",
                "name": "voter",
                "avatar_url": "https://cdn.example/a.png",
            },
        },
    },
    separators=(",", ":"),
).encode()
_STANDARD = json.dumps(
    {
        "type": "vote.create",
        "timestamp": "2026-02-09T00:47:14Z",
        "data": {"user_id": "%(id)s", "target_id": "338202622731485185"},
    },
    separators=(",", ":"),
).encode()


@dataclass(frozen=True)
class SenderSecrets:
    sphere: str
    topgg: str
    standard: str

    @classmethod
    def generate(cls) -> SenderSecrets:
        return cls(
            sphere=secrets.token_hex(16),
            topgg=f"whs_{secrets.token_hex(16)}",
            standard="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        )

    def env(self) -> dict[str, str]:
        return {
            "RELAY_SECRET": self.sphere,
            "RELAY_TOPGG_SECRET": self.topgg,
            "RELAY_STANDARD_WEBHOOKS_SECRET": self.standard,
        }


def _request(path: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = b"".join(b"%s: %s\r\n" % pair for pair in headers)
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
        % (path, len(body), lines, body)
    )


def request_maker(source: str, keys: SenderSecrets, now: int) -> Callable[[bytes], bytes]:
    """Builds `source`'s signed request for an 18-digit id, signed as the relay's own top.gg signer
    and the `standardwebhooks` package sign (the tests check both against independent computations)."""
    if source == "sphere":
        signer = Signer(keys.sphere.encode())
        return lambda snowflake: _request(
            b"/webhook", [(HEADER.encode(), signer(_SPHERE % snowflake))], _SPHERE % snowflake
        )
    if source == "topgg":

        def make_topgg(snowflake: bytes) -> bytes:
            body = _TOPGG % {b"id": snowflake}
            header = topgg.sign(keys.topgg, now, body).encode()
            return _request(b"/webhook/topgg", [(topgg.SIGNATURE_HEADER.encode(), header)], body)

        return make_topgg
    hook, stamp = Webhook(keys.standard), datetime.fromtimestamp(now, UTC)

    def make_standard(snowflake: bytes) -> bytes:
        body = _STANDARD % {b"id": snowflake}
        msg_id = "msg_" + snowflake.decode()
        headers = [
            (b"webhook-id", msg_id.encode()),
            (b"webhook-timestamp", b"%d" % now),
            (b"webhook-signature", hook.sign(msg_id, stamp, body).encode()),
        ]
        return _request(b"/webhook/standard", headers, body)

    return make_standard


def write_sender_requests(
    prefix: Path, source: str, keys: SenderSecrets, threads: int, per_thread: int, nonce: int
) -> Requests:
    """``<prefix>.<source>.N`` per wrk thread: `per_thread` distinct signed votes of `source`, one length."""
    make = request_maker(source, keys, int(time.time()))
    prefix_nonce = nonce % 10**7
    return write_records(
        Path(f"{prefix}.{source}"),
        threads,
        per_thread,
        lambda number: make(b"%07d%011d" % (prefix_nonce, number)),
    )


@dataclass(frozen=True)
class SenderRun:
    """One wrk run against one sender's route of the edge."""

    source: str
    round: int
    wrk: WrkResult
    entries: int
    edge_cpu_s: float
    redis_cpu_s: float

    @property
    def edge_us_per_request(self) -> float:
        return self.edge_cpu_s / self.wrk.requests * 1e6 if self.wrk.requests else 0.0

    @property
    def redis_us_per_request(self) -> float:
        return self.redis_cpu_s / self.wrk.requests * 1e6 if self.wrk.requests else 0.0

    @property
    def stored_all(self) -> bool:
        """Every 2xx a new entry (and at most the unanswered ones more), no repeated body, no error."""
        w = self.wrk
        return (
            0 <= self.entries - w.ok <= w.unanswered and w.repeated == 0 and w.non_2xx + w.socket_errors == 0
        )


def measure_senders(
    group: ProcessGroup,
    store: Redis,
    requests: Mapping[str, Requests],
    *,
    connections: int,
    seconds: float,
    warmup_seconds: float,
    rounds: int,
    env: Mapping[str, str],
) -> list[SenderRun]:
    """Start one edge with every sender on, then measure each route once per round, interleaved."""
    process, port = start_uvicorn(group, "senders-edge", RELAY_APP, env)
    url = f"http://127.0.0.1:{port}"  # the request files carry each route's path
    client = Store(store.url)
    runs = []
    try:
        for files in requests.values():
            if warmup_seconds > 0:
                client.flush()
                run_wrk(url, files, connections=connections, seconds=warmup_seconds)
                client.settled_xlen(EVENTS_STREAM)  # what wrk left in flight is stored before the next flush
        for number in range(1, rounds + 1):
            for source, files in requests.items():
                client.flush()
                time.sleep(0.2)  # let the flush's own work settle out of the measured CPU
                edge_cpu, redis_cpu = process.cpu_seconds(), store.process.cpu_seconds()
                result = run_wrk(url, files, connections=connections, seconds=seconds)
                edge_cpu = process.cpu_seconds() - edge_cpu
                redis_cpu = store.process.cpu_seconds() - redis_cpu
                entries = client.settled_xlen(EVENTS_STREAM)
                runs.append(SenderRun(source, number, result, entries, edge_cpu, redis_cpu))
                print(
                    f"bench: round {number} route {source:8} {result.rps:9,.0f} req/s, "
                    f"edge {runs[-1].edge_us_per_request:.0f} µs/request"
                )
    finally:
        client.close()
        group.stop(process)
    return runs


def medians(runs: Sequence[SenderRun]) -> dict[str, SenderRun]:
    """Each source's median round by throughput."""
    found = {}
    for source in dict.fromkeys(run.source for run in runs):
        median = median_by([run for run in runs if run.source == source], lambda run: run.wrk.rps)
        if median is not None:
            found[source] = median
    return found


def table(runs: Sequence[SenderRun]) -> str:
    """One row per route (its median round), with its CPU per request against Sphere's."""
    chosen = medians(runs)
    sphere = chosen.get("sphere")
    rows = ["| route | requests/s | edge CPU µs/request | vs Sphere's | Redis CPU µs/request | p99 ms | every 2xx stored |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for source, run in chosen.items():
        versus = f"{run.edge_us_per_request / sphere.edge_us_per_request:.2f}x" if sphere else "-"
        every = all(r.stored_all for r in runs if r.source == source)
        rows.append(
            f"| {source} | {run.wrk.rps:,.0f} | {run.edge_us_per_request:.0f} | {versus} | "
            f"{run.redis_us_per_request:.0f} | {run.wrk.p99_ms:.2f} | {'yes' if every else 'NO'} |"
        )
    rounds = "; ".join(
        f"{source}: "
        + ", ".join(f"{r.wrk.rps:,.0f}/s {r.edge_us_per_request:.0f} µs" for r in runs if r.source == source)
        for source in chosen
    )
    return "\n".join(rows) + f"\n\nEvery round (requests/s, edge CPU per request): {rounds}."


def targets(runs: Sequence[SenderRun]) -> list[tuple[str, str, bool | None]]:
    """``(name, measured, met)``: each route's CPU per request within 25% of Sphere's, everything stored."""
    chosen = medians(runs)
    sphere = chosen.get("sphere")
    out: list[tuple[str, str, bool | None]] = []
    for source, run in chosen.items():
        if source != "sphere" and sphere is not None:
            ratio = run.edge_us_per_request / sphere.edge_us_per_request
            out.append(
                (
                    f"route {source}: edge CPU/request <= {RATIO_LIMIT:g}x Sphere's",
                    f"{ratio:.2f}x",
                    ratio <= RATIO_LIMIT,
                )
            )
        stored = all(r.stored_all for r in runs if r.source == source)
        out.append(
            (f"route {source}: every 2xx a new stored entry, no error", "yes" if stored else "no", stored)
        )
    return out
