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
import time
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
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


def extras(record: logging.LogRecord) -> dict[str, object]:
    """The fields a call site passed in ``extra``, in the order it passed them."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


def _text_value(value: object) -> str:
    if type(value) is int or type(value) is float:
        return str(value)
    text = str(value)
    # Quote anything that could break the `key=value` shape or forge a second line (event types
    # come from the request).
    if not text or not text.isprintable() or " " in text or "=" in text or '"' in text:
        return _JSON.encode(text)
    return text


class _Formatter(logging.Formatter):
    """Shared by both formats: UTC timestamps, built once per second (they are costly otherwise)."""

    _second = -1
    _prefix = ""

    def timestamp(self, record: logging.LogRecord) -> str:
        """``2024-05-01T12:00:00.123Z``"""
        second = int(record.created)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int(record.msecs):03d}Z"

    def traceback(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return record.exc_text or None


class TextFormatter(_Formatter):
    """``time LEVEL logger: message key=value ...`` with values quoted when needed."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = [f"{k}={_text_value(v)}" for k, v in extras(record).items() if v is not None]
        if fields:
            line = f"{line} {' '.join(fields)}"
        trace = self.traceback(record)
        return f"{line}\n{trace}" if trace else line


class JsonFormatter(_Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the extras, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": self.timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(extras(record))
        trace = self.traceback(record)
        if trace:
            document["exc"] = trace
        return _JSON.encode(document)


def configure_logging(settings: Settings) -> None:
    """Send every log line of this process to stderr in ``settings.log_format``.

    Idempotent. uvicorn's own loggers are routed through the same handler so a JSON deployment
    gets JSON lines only; call this after uvicorn configured logging (``relay.app:app`` does, since
    uvicorn imports the app after that), or run uvicorn with ``log_config=None``. Exits with a clear
    message on an unknown ``RELAY_LOG_LEVEL``.
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
        if server_logger.handlers:  # uvicorn gave it its own handler: send its lines through ours
            server_logger.handlers.clear()
            server_logger.propagate = True
        # A logger uvicorn switched off (``--no-access-log``: no handler, no propagation) stays off.
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
