"""The edge's metrics: counters that move with real requests, ``RELAY_METRICS`` on, off and on a port of
its own, Redis errors, and the counting core (`Timings`) and the metrics listener on their own.

Real uvicorn, real Redis; signatures computed here with hmac. Scrapes are parsed with
prometheus-client's own parser, as Prometheus would read them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from relay.app import create_app
from relay.core.exposition import answer, serve
from relay.core.metrics import Timings
from relay.core.settings import describe_errors
from relay.edge.metrics import EDGE_BUCKETS, OUTCOMES, EdgeMetrics
from tests.conftest import SECRET, make_settings
from tests.support import scrapes
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer, free_port
from tests.support.scrapes import Samples, parse, value

VOTE = b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"258317078560243712"}'


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Sphere-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def scrape(url: str) -> Samples:
    return scrapes.scrape(url, content_type="text/plain; version=0.0.4")


def requests(samples: Samples, outcome: str) -> float:
    return value(samples, "relay_webhook_requests_total", outcome=outcome)


@pytest.fixture
def edge(redis_url: str) -> Iterator[str]:
    with running_edge(make_settings(redis_url, max_body_bytes=1024)) as url:
        yield url


def test_requests_are_counted_by_outcome_as_they_arrive(edge: str) -> None:
    with httpx.Client(base_url=edge, timeout=10) as http:
        before = scrape(f"{edge}/metrics")
        assert all(requests(before, outcome) == 0 for outcome in OUTCOMES)  # every series exists at 0
        assert all(("relay_webhook_requests_total", frozenset({("outcome", o)})) in before for o in OUTCOMES)

        assert http.post("/webhook", content=VOTE, headers=signed(VOTE)).status_code == 202
        assert requests(scrape(f"{edge}/metrics"), "queued") == 1

        assert http.post("/webhook", content=VOTE, headers=signed(VOTE)).status_code == 200
        assert http.post("/webhook", content=VOTE, headers=signed(VOTE, "wrong")).status_code == 401
        assert http.post("/webhook", content=VOTE, headers={}).status_code == 401
        not_json = b"not json"
        assert http.post("/webhook", content=not_json, headers=signed(not_json)).status_code == 400
        bad_vote = json.dumps({"event": "VOTE_ADD", "guild_id": 5}).encode()
        assert http.post("/webhook", content=bad_vote, headers=signed(bad_vote)).status_code == 422
        big = b"x" * 2048
        assert http.post("/webhook", content=big, headers=signed(big)).status_code == 413
        assert http.get("/webhook").status_code == 405

    after = scrape(f"{edge}/metrics")

    assert {outcome: requests(after, outcome) for outcome in OUTCOMES} == {
        "queued": 1,
        "duplicate": 1,
        "invalid_signature": 2,
        "invalid_body": 1,
        "invalid_event": 1,
        "body_too_large": 1,
        "body_timeout": 0,
        "redis_unavailable": 0,
        "shutting_down": 0,
        "internal_error": 0,
        "client_gone": 0,
        "method_not_allowed": 1,
        "forbidden_source": 0,
    }
    # The histogram counts the same requests, each in its bucket and the +Inf one.
    assert value(after, "relay_webhook_duration_seconds_count", outcome="invalid_signature") == 2
    assert value(after, "relay_webhook_duration_seconds_bucket", outcome="invalid_signature", le="+Inf") == 2
    assert value(after, "relay_webhook_duration_seconds_sum", outcome="queued") > 0
    assert value(after, "relay_redis_errors_total", kind="connection") == 0
    assert value(after, "process_cpu_seconds_total") > 0  # prometheus-client's process collector


def test_metrics_off_is_404_and_the_webhook_still_works(redis_url: str) -> None:
    with running_edge(make_settings(redis_url, metrics="off")) as url:
        assert httpx.get(f"{url}/metrics").status_code == 404
        assert httpx.post(f"{url}/webhook", content=VOTE, headers=signed(VOTE)).status_code == 202


def test_metrics_on_a_port_of_their_own_are_not_on_the_main_port(redis_url: str) -> None:
    port = free_port()
    with running_edge(make_settings(redis_url, metrics=f"127.0.0.1:{port}")) as url:
        assert httpx.get(f"{url}/metrics").status_code == 404
        assert httpx.post(f"{url}/webhook", content=VOTE, headers=signed(VOTE)).status_code == 202

        samples = scrape(f"http://127.0.0.1:{port}/metrics")

        assert requests(samples, "queued") == 1
        assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404
    with pytest.raises(httpx.ConnectError):  # closed with the edge
        httpx.get(f"http://127.0.0.1:{port}/metrics")


@pytest.mark.anyio
async def test_the_edge_refuses_to_start_when_its_metrics_port_is_taken(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(make_settings(redis_url, metrics=f"127.0.0.1:{port}"))

        with pytest.raises(OSError, match="address already in use"):
            async with app.api.router.lifespan_context(app.api):
                pass


def test_redis_down_counts_unavailable_answers_and_redis_errors(own_redis: RedisServer) -> None:
    with running_edge(make_settings(own_redis.url, redis_timeout=0.5)) as url:
        own_redis.kill()
        assert httpx.post(f"{url}/webhook", content=VOTE, headers=signed(VOTE)).status_code == 503

        samples = scrape(f"{url}/metrics")

    assert requests(samples, "redis_unavailable") == 1
    errors = {
        kind: value(samples, "relay_redis_errors_total", kind=kind) for kind in ("connection", "timeout")
    }
    assert sum(errors.values()) == 1, errors


def test_openmetrics_is_served_when_asked_for(edge: str) -> None:
    response = httpx.get(f"{edge}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("on", "on"), ("OFF", "off"), ("9101", "0.0.0.0:9101"), ("127.0.0.1:9101", "127.0.0.1:9101")],
)
def test_relay_metrics_values(redis_url: str, given: str, stored: str) -> None:
    assert make_settings(redis_url, metrics=given).metrics == stored


@pytest.mark.parametrize("given", ["yes", "70000", "host:", "0", ""])
def test_a_bad_relay_metrics_is_refused_naming_the_variable(redis_url: str, given: str) -> None:
    with pytest.raises(ValidationError) as error:
        make_settings(redis_url, metrics=given)

    message = describe_errors(error.value)
    assert "RELAY_METRICS:" in message
    assert "must be on, off, a port, or host:port" in message


def test_worker_metrics_default_to_port_9100_on_this_host_only(redis_url: str) -> None:
    settings = make_settings(redis_url)  # sets no metrics value: these are the defaults

    assert (settings.metrics, settings.worker_metrics, settings.worker_metrics_ports) == (
        "on",
        "127.0.0.1:9100",
        16,
    )
    assert make_settings(redis_url, worker_metrics="on").worker_metrics == "127.0.0.1:9100"
    assert make_settings(redis_url, worker_metrics="9100").worker_metrics == "0.0.0.0:9100"
    assert make_settings(redis_url, worker_metrics="Off").worker_metrics == "off"
    with pytest.raises(ValidationError, match="worker_metrics"):
        make_settings(redis_url, worker_metrics="nope")


# -- the counting core ----------------------------------------------------------------------------


def test_timings_count_a_value_on_a_bound_in_that_bound_s_bucket() -> None:
    timings = Timings(["outcome"], [0.001, 0.01])
    row = timings.row("queued")

    for seconds in (0.0005, 0.001, 0.002, 0.01, 5.0):
        timings.observe(row, seconds)

    [family] = [timings.histogram_family("t_seconds", "doc")]
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == "t_seconds_bucket"}
    assert buckets == {"0.001": 2, "0.01": 4, "+Inf": 5}
    assert [s.value for s in family.samples if s.name == "t_seconds_count"] == [5]
    assert [s.value for s in family.samples if s.name == "t_seconds_sum"] == [pytest.approx(5.0135)]
    assert timings.count("queued") == 5
    assert timings.count("never") == 0


def test_edge_metrics_match_what_prometheus_clients_own_counter_would_export() -> None:
    metrics = EdgeMetrics()
    metrics.observe("queued", 0.002)
    metrics.observe("queued", 0.004)
    metrics.observe("something_new", 0.5)  # an outcome missing from OUTCOMES is still counted
    reference = CollectorRegistry()
    counter = Counter("relay_webhook_requests", "doc", ["outcome"], registry=reference)
    counter.labels("queued").inc(2)

    ours = parse(answer(metrics.registry, b"GET /metrics HTTP/1.1").split(b"\r\n\r\n", 1)[1].decode())

    assert requests(ours, "queued") == 2 == counter.labels("queued")._value.get()
    assert requests(ours, "something_new") == 1
    assert value(ours, "relay_webhook_duration_seconds_bucket", outcome="queued", le="0.005") == 2
    assert value(ours, "relay_webhook_duration_seconds_bucket", outcome="queued", le="0.002") == 1
    assert len(EDGE_BUCKETS) == len(set(EDGE_BUCKETS))


# -- the metrics listener -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x", b"200"),
        (b"GET /metrics?name[]=x HTTP/1.1", b"200"),
        (b"HEAD /metrics HTTP/1.1", b"200"),
        (b"POST /metrics HTTP/1.1", b"405"),
        (b"GET / HTTP/1.1", b"404"),
        (b"GET /metrics", b"400"),
        (b"\xff\xfe garbage", b"400"),
    ],
)
def test_the_listener_answers(head: bytes, status: bytes) -> None:
    response = answer(EdgeMetrics().registry, head)

    first_line, _, rest = response.partition(b"\r\n")
    assert first_line.split(b" ")[1] == status
    headers, _, body = rest.partition(b"\r\n\r\n")
    length = int(
        next(line for line in headers.split(b"\r\n") if line.startswith(b"Content-Length")).split(b":")[1]
    )
    assert len(body) == (0 if head.startswith(b"HEAD") else length)


@pytest.mark.anyio
async def test_the_listener_takes_the_next_port_when_one_is_taken() -> None:
    registry = EdgeMetrics().registry
    first_port = free_port()
    first = await serve(registry, "127.0.0.1", range(first_port, first_port + 8))
    second = await serve(registry, "127.0.0.1", range(first_port, first_port + 8))
    try:
        assert first.port == first_port
        assert first_port < second.port < first_port + 8
        async with httpx.AsyncClient(timeout=10) as http:
            for server in (first, second):
                response = await http.get(server.url)
                assert response.status_code == 200
                assert "relay_webhook_requests_total" in response.text
        with pytest.raises(OSError):
            await serve(registry, "127.0.0.1", [first.port])
    finally:
        await first.close()
        await second.close()


@pytest.mark.anyio
async def test_a_port_another_process_has_bound_but_not_yet_listens_on_is_passed_over() -> None:
    # Two workers starting together: the other one has bound the port and is about to listen.
    # With SO_REUSEADDR both binds succeed and both workers could end up reporting one port.
    first_port = free_port()
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    other.bind(("127.0.0.1", first_port))
    try:
        server = await serve(EdgeMetrics().registry, "127.0.0.1", range(first_port, first_port + 8))
        try:
            assert server.port != first_port
            other.listen()  # the other process gets the port it bound
        finally:
            await server.close()
    finally:
        other.close()


@pytest.mark.anyio
async def test_the_listener_drops_a_client_that_sends_no_request() -> None:
    server = await serve(EdgeMetrics().registry, "127.0.0.1", [free_port()])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")  # never finished
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        await server.close()
