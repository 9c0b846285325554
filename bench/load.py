"""Load for the bench: signed Sphere deliveries, and `wrk` to send them.

The deliveries are REVIEW_ADD events, each with its own review id and user id, so the edge takes the
path that stores a new entry rather than the duplicate path. They are signed here, ahead of the run,
and written as ready HTTP requests that `wrk/post.lua` slices and sends (see that script for why).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import resource
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from relay.edge.signature import HEADER

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post.lua"
WRK_INSTALL_HINT = "bench: `wrk` is not installed; on Debian or Ubuntu: sudo apt-get install wrk"
_HEADER = HEADER.encode()
_RESULT_LINE = re.compile(r"^BENCH_RESULT (\{.*\})$", re.MULTILINE)


def _review_template() -> bytes:
    event = {
        "event": "REVIEW_ADD",
        "guild_id": "338202622731485185",
        "user_id": "%(id)s",
        "review": {
            "id": "%(id)s",
            "published_timestamp": 1604839992654,
            "stars": 5,
            "content": {"title": "Lorem Ipsum", "description": "Lorem Ipsum is simply dummy text"},
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


# Shaped like the example in Sphere's guide. Filled in by %-formatting: hundreds of thousands of
# bodies are made per run, and json.dumps each time would take seconds.
_REVIEW = _review_template()


def review_body(number: int, nonce: int) -> bytes:
    """A REVIEW_ADD body whose review id and user id are unique per (`number`, `nonce`), fixed-width."""
    snowflake = b"%07d%011d" % (nonce % 10**7, number)
    return _REVIEW % {b"id": snowflake}


class Signer:
    """HMAC-SHA256 hex signatures under one secret, computed here rather than by the relay.

    The padded key is hashed once and the hash states copied per body, which is about twice as fast
    as `hmac.digest` per call; the first signature is checked against `hmac` itself.
    """

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))
        if self(b"check") != hmac.new(secret, b"check", "sha256").hexdigest().encode():
            raise AssertionError("Signer disagrees with hmac")

    def __call__(self, body: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest().encode()


def signed_request(body: bytes, signer: Signer) -> bytes:
    """A complete HTTP/1.1 POST /webhook carrying `body` and its signature."""
    return (
        b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s: %s\r\n\r\n%s"
        % (len(body), _HEADER, signer(body), body)
    )


@dataclass(frozen=True)
class Requests:
    """Signed request files for wrk: ``<prefix>.N`` per thread, records of `length` bytes."""

    prefix: Path
    length: int
    per_thread: int


def write_requests(prefix: Path, threads: int, per_thread: int, secret: bytes, nonce: int) -> Requests:
    """Write ``<prefix>.1`` .. ``<prefix>.<threads>``, `per_thread` distinct signed requests each.

    Every request has the same length (the ids are fixed-width), which `post.lua` relies on to read
    them as records.
    """
    signer = Signer(secret)
    return write_records(
        prefix, threads, per_thread, lambda number: signed_request(review_body(number, nonce), signer)
    )


def write_records(prefix: Path, threads: int, per_thread: int, make: Callable[[int], bytes]) -> Requests:
    """``<prefix>.1`` .. ``<prefix>.<threads>``: `per_thread` requests ``make(number)`` each, numbered
    on across the files, all of one length (`post.lua` reads them as fixed-size records)."""
    length = len(make(0))
    for thread in range(1, threads + 1):
        first = (thread - 1) * per_thread
        with Path(f"{prefix}.{thread}").open("wb") as out:
            for number in range(first, first + per_thread):
                request = make(number)
                if len(request) != length:
                    raise ValueError(f"request {number} is {len(request)} bytes, not {length}")
                out.write(request)
    return Requests(prefix, length, per_thread)


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured, as printed by `post.lua`'s ``done()``."""

    connections: int
    duration_s: float
    requests: int
    """Responses received (wrk's "requests")."""
    non_2xx: int
    """Responses with a status above 399: wrk counts no other status apart, and our servers send no 1xx or 3xx."""
    socket_errors: int
    """Connect, read and write errors, and responses slower than wrk's timeout."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    sent: int
    """Requests written, including those still unanswered when wrk stopped."""
    repeated: int
    """Requests whose body had been sent before in this run (0 unless the body files ran out)."""
    raw: str
    cpu_s: float = 0.0
    """CPU time wrk itself used: the load generator shares the machine with the server."""

    @property
    def ok(self) -> int:
        """2xx responses."""
        return self.requests - self.non_2xx

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def unanswered(self) -> int:
        """Requests sent without a response before wrk stopped: the server may have stored them."""
        return max(self.sent - self.requests, 0)


def parse_wrk(stdout: str, connections: int) -> WrkResult:
    """Read the ``BENCH_RESULT`` line from wrk's output; raise ValueError when it is missing."""
    match = _RESULT_LINE.search(stdout)
    if match is None:
        raise ValueError(f"no BENCH_RESULT line in wrk's output:\n{stdout}")
    data = json.loads(match.group(1))
    errors = data["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    latency = data["latency_us"]
    return WrkResult(
        connections=connections,
        duration_s=data["duration_us"] / 1e6,
        requests=data["requests"],
        non_2xx=errors["status"],
        socket_errors=socket_errors,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        # wrk calls request() once before the run to check that it returns a valid request, and
        # never sends that one.
        sent=max(data["sent"] - 1, 0),
        repeated=data["repeated"],
        raw=stdout,
    )


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(WRK_INSTALL_HINT)
    return path


def run_wrk(url: str, requests: Requests, *, connections: int, seconds: float) -> WrkResult:
    """Run wrk against `url` for `seconds` with `connections`, one thread per connection up to two."""
    threads = min(connections, 2)
    args = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(round(seconds), 1)}s",
        "--timeout", "5s",
        "-s", str(WRK_SCRIPT),
        url,
        "--", str(requests.prefix), str(requests.length),
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return replace(parse_wrk(done.stdout + done.stderr, connections), cpu_s=cpu)
