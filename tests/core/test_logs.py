"""Log formats, and the edge's one line per request that never carries a secret or a body."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import httpx
import pytest

from relay.core.logs import (
    LOGGED_TYPE_CHARS,
    JsonFormatter,
    RequestLog,
    TextFormatter,
    configure_logging,
    redact_url,
)
from relay.core.settings import Settings
from tests.conftest import PREVIOUS_SECRET, SECRET, make_settings
from tests.support.edge_server import running_edge


def record(message: str = "webhook", exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.getLogger("relay.test").makeRecord(
        "relay.test", logging.INFO, __file__, 1, message, (), exc_info, extra=extra
    )


def test_text_puts_extras_after_the_message_as_key_value() -> None:
    line = TextFormatter().format(record(outcome="queued", status=202, entry_id=None))

    assert line.endswith("INFO relay.test: webhook outcome=queued status=202")


def test_text_quotes_values_that_could_forge_a_line() -> None:
    line = TextFormatter().format(record(event_type="X\nINFO relay: fake", empty=""))

    assert "\n" not in line
    assert 'event_type="X\\nINFO relay: fake"' in line
    assert 'empty=""' in line


def test_text_keeps_the_traceback_after_the_fields() -> None:
    line = TextFormatter().format(record(exc=True, outcome="internal_error"))

    head, _, trace = line.partition("\n")
    assert head.endswith("outcome=internal_error")
    assert "ValueError: boom" in trace


def test_json_is_one_object_per_line_with_the_extras() -> None:
    line = JsonFormatter().format(record(outcome="queued", status=202, event_type="ОТЗЫВ"))

    assert "\n" not in line
    document = json.loads(line)
    assert document["level"] == "INFO"
    assert document["logger"] == "relay.test"
    assert document["message"] == "webhook"
    assert (document["outcome"], document["status"], document["event_type"]) == ("queued", 202, "ОТЗЫВ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["ts"])


def test_json_carries_the_traceback() -> None:
    document = json.loads(JsonFormatter().format(record(exc=True)))

    assert "ValueError: boom" in document["exc"]


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure_logging changes process-wide state; put it all back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))
    servers = {name: logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved = {name: (lg.handlers[:], lg.propagate) for name, lg in servers.items()}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (server_handlers, propagate) in saved.items():
        servers[name].handlers[:] = server_handlers
        servers[name].propagate = propagate


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("fmt", "formatter"), [("text", TextFormatter), ("json", JsonFormatter)])
def test_configure_logging_installs_one_handler_of_the_chosen_format(fmt: str, formatter: type) -> None:
    settings = make_settings("redis://unused", log_format=fmt, log_level="warning")

    configure_logging(settings)
    configure_logging(settings)  # idempotent

    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert isinstance(root.handlers[0].formatter, formatter)
    assert root.level == logging.WARNING


@pytest.mark.usefixtures("restore_logging")
def test_uvicorn_lines_go_through_our_handler_unless_uvicorn_switched_them_off() -> None:
    # What uvicorn's own set-up leaves behind with --no-access-log.
    server, access = logging.getLogger("uvicorn"), logging.getLogger("uvicorn.access")
    server.handlers[:], server.propagate = [logging.StreamHandler()], False
    access.handlers[:], access.propagate = [], False

    configure_logging(make_settings("redis://unused", log_format="json"))

    assert (server.handlers, server.propagate) == ([], True)
    assert (access.handlers, access.propagate) == ([], False)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_refuses_an_unknown_level() -> None:
    with pytest.raises(SystemExit, match="RELAY_LOG_LEVEL"):
        configure_logging(make_settings("redis://unused", log_level="LOUD"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://user:hunter2@redis/1", "rediss://user:***@redis/1"),
    ],
)
def test_redact_url_hides_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- the edge's request lines ------------------------------------------------------------------


@pytest.fixture
def edge_url(settings: Settings) -> Iterator[str]:
    with running_edge(settings) as url:
        yield url


def test_one_info_line_per_request_without_secret_or_body(
    edge_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"987654321"}'
    good = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    old = hmac.new(PREVIOUS_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with httpx.Client(base_url=edge_url) as http:
        answers = [
            http.post("/webhook", content=body, headers={"X-Sphere-Signature": good}),
            http.post("/webhook", content=body, headers={"X-Sphere-Signature": old}),
            http.post("/webhook", content=body, headers={"X-Sphere-Signature": SECRET}),
            http.post("/webhook", content=b"[]", headers={"X-Sphere-Signature": good}),
        ]

    lines = [r for r in caplog.records if r.name == "relay.edge.webhook"]
    assert [(r.outcome, r.status) for r in lines] == [  # type: ignore[attr-defined]
        ("queued", 202),
        ("duplicate", 200),
        ("invalid_signature", 401),
        ("invalid_signature", 401),
    ]
    assert [a.status_code for a in answers] == [202, 200, 401, 401]
    assert lines[0].entry_id == answers[0].json()["id"]  # type: ignore[attr-defined]
    assert lines[0].event_type == "VOTE_ADD"  # type: ignore[attr-defined]
    assert lines[0].bytes == len(body)  # type: ignore[attr-defined]
    assert all(r.levelno == logging.INFO for r in lines)
    text = "\n".join(TextFormatter().format(r) + JsonFormatter().format(r) for r in caplog.records)
    for secret in (SECRET, PREVIOUS_SECRET, good, "987654321"):
        assert secret not in text


# -- RequestLog: the same line, written straight to the stream ---------------------------------


class CountingStream(io.StringIO):
    """A stream that counts its writes, to see the lines of one tick go out together."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def private_logger(request: pytest.FixtureRequest) -> logging.Logger:
    """A logger of the test's own, outside logging's tree: no parent, so no other handler (pytest
    attaches its capturing handlers to every logger in the tree that does not propagate)."""
    return logging.Logger(f"relay.test.{request.node.name}", logging.INFO)


def direct(logger: logging.Logger, formatter: logging.Formatter) -> tuple[RequestLog, CountingStream]:
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    request_log = RequestLog(logger)
    request_log.start()
    print("DBG", logger.propagate, logger.handlers, logger.level, request_log._handler)
    return request_log, stream


# (outcome, status, size, event type, entry id, seconds), and the extras the stdlib call would carry
REQUESTS: list[tuple[str, int, int, str | None, bytes | None, float]] = [
    ("queued", 202, 57, "VOTE_ADD", b"1700000000000-0", 0.001234),
    ("duplicate", 200, 57, "REVIEW_ADD", b"1700000000000-1", 0.5),
    ("invalid_signature", 401, 12, None, None, 0.0000421),
    ("invalid_event", 422, 40, "X\nINFO relay: fake", None, 2.0),
    ("queued", 202, 300, "ОТЗЫВ 🎉", b"1-0", 0.01),
    ("invalid_event", 422, 3, "T" * 100, None, 0.02),
    ("client_gone", 0, 0, 'a "b" = c', None, 0.0),
]


def stdlib_line(logger: logging.Logger, formatter: logging.Formatter, request: tuple[object, ...]) -> str:
    outcome, status, size, event_type, entry_id, seconds = request
    assert isinstance(seconds, float)
    extra = {
        "outcome": outcome,
        "status": status,
        "entry_id": entry_id.decode() if isinstance(entry_id, bytes) else None,
        "event_type": event_type[:LOGGED_TYPE_CHARS] if isinstance(event_type, str) else None,
        "bytes": size,
        "ms": round(seconds * 1000, 2),
    }
    made = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "webhook", (), None, extra=extra)
    return formatter.format(made)


def without_time(line: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<ts>", line, count=1)


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_request_lines_are_what_the_formatter_writes(
    private_logger: logging.Logger, formatter: logging.Formatter
) -> None:
    request_log, stream = direct(private_logger, formatter)

    for request in REQUESTS:
        request_log.write(*request)  # no running loop: written at once
    request_log.stop()

    lines = stream.getvalue().splitlines()
    assert len(lines) == len(REQUESTS)
    expected = [stdlib_line(private_logger, formatter, request) for request in REQUESTS]
    assert [without_time(line) for line in lines] == [without_time(line) for line in expected]
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.removeprefix('{"ts": "'))


def test_json_request_lines_parse_with_every_field(private_logger: logging.Logger) -> None:
    request_log, stream = direct(private_logger, JsonFormatter())

    for request in REQUESTS:
        request_log.write(*request)

    documents = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [d["event_type"] for d in documents] == [
        r[3][:LOGGED_TYPE_CHARS] if r[3] is not None else None for r in REQUESTS
    ]
    assert documents[0] == {
        "ts": documents[0]["ts"],
        "level": "INFO",
        "logger": private_logger.name,
        "message": "webhook",
        "outcome": "queued",
        "status": 202,
        "entry_id": "1700000000000-0",
        "event_type": "VOTE_ADD",
        "bytes": 57,
        "ms": 1.23,
    }


@pytest.mark.anyio
async def test_the_lines_of_one_tick_go_out_in_one_write(private_logger: logging.Logger) -> None:
    request_log, stream = direct(private_logger, TextFormatter())

    for request in REQUESTS:
        request_log.write(*request)
    assert stream.getvalue() == ""  # held until the loop comes round
    await asyncio.sleep(0)  # one turn of the loop: the flush scheduled by the first line runs

    assert len(stream.getvalue().splitlines()) == len(REQUESTS)
    assert stream.writes == 1


@pytest.mark.anyio
async def test_stop_writes_what_is_still_buffered(private_logger: logging.Logger) -> None:
    request_log, stream = direct(private_logger, JsonFormatter())

    request_log.write(*REQUESTS[0])
    request_log.write(*REQUESTS[1])
    request_log.stop()  # before the loop comes round

    assert [json.loads(line)["outcome"] for line in stream.getvalue().splitlines()] == ["queued", "duplicate"]
    await asyncio.sleep(0)  # the flush that was scheduled finds nothing left to write
    assert stream.writes == 1


def test_below_info_at_start_nothing_is_written(private_logger: logging.Logger) -> None:
    private_logger.setLevel(logging.WARNING)
    request_log, stream = direct(private_logger, TextFormatter())

    request_log.write(*REQUESTS[0])
    request_log.stop()

    assert stream.getvalue() == ""


def test_other_logging_set_ups_get_ordinary_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("relay.test.ordinary")  # reaches pytest's handlers: not ours to bypass
    caplog.set_level(logging.INFO, logger=logger.name)
    request_log = RequestLog(logger)
    request_log.start()

    request_log.write(*REQUESTS[0])

    [record] = [r for r in caplog.records if r.name == logger.name]
    assert record.getMessage() == "webhook"
    assert (record.outcome, record.status, record.entry_id) == ("queued", 202, "1700000000000-0")  # type: ignore[attr-defined]


def test_the_edge_writes_every_request_line_by_shutdown(settings: Settings) -> None:
    # The edge's logger wired as configure_logging wires the root: RequestLog writes directly.
    logger = logging.getLogger("relay.edge.webhook")
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    saved = logger.handlers[:], logger.propagate, logger.level
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    body = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"987654321"}'
    good = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    try:
        with running_edge(settings) as url, httpx.Client(base_url=url) as http:
            answers = [
                http.post("/webhook", content=body, headers={"X-Sphere-Signature": good}),
                http.post("/webhook", content=body, headers={"X-Sphere-Signature": good}),
                http.post("/webhook", content=body, headers={"X-Sphere-Signature": SECRET}),
                http.post("/webhook", content=b"{", headers={"X-Sphere-Signature": good}),
            ]
            # The edge's lifespan stops here, writing whatever the last tick left.
    finally:
        logger.handlers[:], logger.propagate, _ = saved
        logger.setLevel(saved[2])

    documents = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(d["outcome"], d["status"]) for d in documents] == [
        ("queued", 202),
        ("duplicate", 200),
        ("invalid_signature", 401),
        ("invalid_signature", 401),
    ]
    assert [a.status_code for a in answers] == [202, 200, 401, 401]
    assert documents[0]["entry_id"] == answers[0].json()["id"] == documents[1]["entry_id"]
    assert documents[0]["bytes"] == len(body)
    for secret in (SECRET, PREVIOUS_SECRET, good, "987654321", body.decode()):
        assert secret not in stream.getvalue()
