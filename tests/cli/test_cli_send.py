"""``relay send`` against a real edge (uvicorn) and a real Redis: what it sends is what Sphere sends."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from relay.core.events import ReviewAdd, VoteAdd, parse
from relay.core.keys import EVENTS_STREAM, F_BODY
from relay.edge.signature import HEADER
from tests.cli.cli_support import cli_env, hmac_hex, invoke
from tests.conftest import SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.usefixtures(cli_env.__name__)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yield its webhook URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    with running_edge(make_settings(shared_redis.url)) as url:
        yield url + "/webhook"


def stored(client: redis.Redis) -> dict[str, bytes]:
    return {entry_id.decode(): fields[F_BODY.encode()] for entry_id, fields in client.xrange(EVENTS_STREAM)}


def test_a_vote_is_accepted_stored_and_verifies_with_the_secret(
    edge_url: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_SECRET", SECRET)
    result = invoke(["send", "vote", "--url", edge_url, "--guild", "338202622731485185", "--user", "42"])

    assert result.exit_code == 0, result.output
    status, outcome, entry_id = result.output.split()
    assert (status, outcome) == ("202", "queued")
    body = stored(client)[entry_id]
    assert body == b'{"event":"VOTE_ADD","guild_id":"338202622731485185","user_id":"42"}'
    assert isinstance(parse(body), VoteAdd)


def test_the_signature_is_sphere_s(tmp_path: Path) -> None:
    """Seen from the receiving side: the header is the hex HMAC-SHA256 of the exact body bytes."""
    seen: list[tuple[bytes, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((body, self.headers[HEADER]))
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status":"queued","id":"1-0"}')

        def log_message(self, *args: object) -> None:
            pass

    with serving(Receiver) as url:
        result = invoke(["send", "review", "--url", url, "--secret", "s3cret-for-signing", "--count", "2"])

    assert result.exit_code == 0, result.output
    assert len(seen) == 2
    for body, header in seen:
        assert hmac.compare_digest(header, hmac_hex(body, "s3cret-for-signing"))
        assert isinstance(parse(body), ReviewAdd)


def test_a_burst_of_reviews_is_stored_whole_with_distinct_review_ids(
    edge_url: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_SECRET", SECRET)
    args = ["send", "review", "--url", edge_url, "--count", "5", "--stars", "2", "--title", "Лагает 🐢"]
    result = invoke([*args, "--text", "Бот отвечает через минуту"])

    assert result.exit_code == 0, result.output
    assert result.output.count("202 queued") == 5
    assert "sent 5: 5 queued" in result.output
    reviews = [parse(body) for body in stored(client).values()]
    assert len({r.review.id for r in reviews if isinstance(r, ReviewAdd)}) == 5
    assert {(r.review.stars, r.review.content.title) for r in reviews if isinstance(r, ReviewAdd)} == {
        (2, "Лагает 🐢")
    }


def test_votes_of_one_user_are_one_delivery(
    edge_url: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_SECRET", SECRET)
    result = invoke(["send", "vote", "--url", edge_url, "--user", "7", "--count", "3"])

    assert result.exit_code == 0, result.output  # a duplicate is an accepted delivery
    lines = result.output.splitlines()
    first_id = lines[0].split()[2]
    assert lines[:3] == [f"202 queued {first_id}", f"200 duplicate {first_id}", f"200 duplicate {first_id}"]
    assert list(stored(client)) == [first_id]


def test_a_forgery_refused_with_401_exits_0(edge_url: str, client: redis.Redis) -> None:
    result = invoke(["send", "vote", "--url", edge_url, "--bad-signature", "--count", "2"])

    assert result.exit_code == 0, result.output
    assert result.output.count("401 invalid_signature") == 2
    assert "forgery refused" in result.output
    assert stored(client) == {}


def test_a_deployment_that_accepts_forgeries_fails_the_check() -> None:
    class Naive(BaseHTTPRequestHandler):  # a receiver that never checks the signature
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(202)
            self.end_headers()
            self.wfile.write(b'{"status":"queued","id":"1-0"}')

        def log_message(self, *args: object) -> None:
            pass

    with serving(Naive) as url:
        result = invoke(["send", "vote", "--url", url, "--bad-signature"])

    assert result.exit_code == 1
    assert "ACCEPTED a forged signature" in result.output


def test_a_wrong_secret_exits_1_and_is_not_printed(edge_url: str) -> None:
    result = invoke(["send", "vote", "--url", edge_url, "--secret", "not-the-secret-9876"])

    assert result.exit_code == 1
    assert "401 invalid_signature" in result.output
    assert "not-the-secret-9876" not in result.output


def test_the_secret_comes_from_dot_env(edge_url: str, cli_env: Path) -> None:
    (cli_env / ".env").write_text(f"RELAY_SECRET={SECRET}\n")
    result = invoke(["send", "vote", "--url", edge_url])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("202 queued ")
    assert SECRET not in result.output


def test_no_secret_is_a_usage_error() -> None:
    result = invoke(["send", "vote"])

    assert result.exit_code == 2
    assert "no secret" in result.output
    assert "RELAY_SECRET" in result.output


@pytest.mark.parametrize("where", ["env", "flag"])
@pytest.mark.parametrize("weak", ["<your listing's secret key>", "changeme-changeme-1", "short-but-real"])
def test_a_secret_the_relay_would_refuse_sends_nothing(
    weak: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Recorder) as url:
        if where == "env":
            monkeypatch.setenv("RELAY_SECRET", weak)
            result = invoke(["send", "vote", "--url", url])
        else:
            result = invoke(["send", "vote", "--url", url, "--secret", weak])

    assert result.exit_code == 2, result.output
    assert ("RELAY_SECRET" if where == "env" else "--secret") in result.output
    assert "Sphere" in result.output
    assert weak not in result.output
    assert seen == []


def test_an_unreachable_edge_exits_3_with_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhook"
    result = invoke(["send", "vote", "--url", url, "--secret", SECRET])

    assert result.exit_code == 3
    assert result.output.startswith(f"relay: cannot reach the edge at {url}: ")
    assert len(result.output.splitlines()) == 1


def test_a_url_that_is_not_http_is_a_usage_error() -> None:
    result = invoke(["send", "vote", "--url", "ftp://example.invalid/webhook", "--secret", SECRET])

    assert result.exit_code == 2
    assert "is not an http(s) URL" in result.output


def test_the_url_comes_from_relay_webhook_url(edge_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_SECRET", SECRET)
    monkeypatch.setenv("RELAY_WEBHOOK_URL", edge_url)  # as compose sets it inside the containers

    result = invoke(["send", "vote"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("202 queued ")
