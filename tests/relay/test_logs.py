"""Log formats, and the edge's one line per request that never carries a secret or a body."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
from collections.abc import Iterator

import httpx
import pytest

from relay.logs import JsonFormatter, TextFormatter, configure_logging, redact_url
from relay.settings import Settings
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

    lines = [r for r in caplog.records if r.name == "relay.webhook"]
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
