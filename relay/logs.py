"""Logging for the edge and the workers: plain text or one JSON object per line.

Structured values travel in the standard ``extra`` mapping, so call sites stay ordinary logging::

    log.info("webhook answered", extra={"outcome": "queued", "status": 202, "entry_id": "1-0"})

renders as ``... webhook answered outcome=queued status=202 entry_id=1-0`` in text, or as one JSON
object with those keys. Nothing here ever sees a secret or a request body: callers do not pass them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from relay.settings import Settings

# Attributes every LogRecord has; anything else on a record came from `extra` (except the ANSI
# copy of its message that uvicorn adds).
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def extras(record: logging.LogRecord) -> dict[str, object]:
    """The fields a call site passed in ``extra``, in the order it passed them."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


def _text_value(value: object) -> str:
    text = str(value)
    # Quote anything that could break the `key=value` shape or forge a second line (event types
    # come from the request).
    if not text or not text.isprintable() or any(c in text for c in ' ="'):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` with values quoted when needed."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in extras(record).items() if v is not None)
        if not fields:
            return line
        head, newline, trace = line.partition("\n")
        return f"{head} {fields}{newline}{trace}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the extras, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(extras(record))
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def configure_logging(settings: Settings) -> None:
    """Send every log line of this process to stderr in ``settings.log_format``.

    Idempotent. uvicorn's own loggers are routed through the same handler so a JSON deployment
    gets JSON lines only. Exits with a clear message on an unknown ``RELAY_LOG_LEVEL``.
    """
    level = logging.getLevelNamesMapping().get(settings.log_level.strip().upper())
    if level is None:
        raise SystemExit("sphere-relay: RELAY_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    # Documented logging speed-ups: no format here uses caller, thread or process details, and
    # working them out costs several microseconds on every request line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def redact_url(url: str) -> str:
    """`url` without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))
