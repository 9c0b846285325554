"""Logging for the edge and the workers: plain text or one JSON object per line.

Structured values travel in the standard ``extra`` mapping, so call sites stay ordinary logging::

    log.info("webhook answered", extra={"outcome": "queued", "status": 202, "entry_id": "1-0"})

renders as ``... webhook answered outcome=queued status=202 entry_id=1-0`` in text, or as one JSON
object with those keys. Nothing here ever sees a secret or a request body: callers do not pass them.

The edge's line per request goes through `RequestLog` instead, which writes the same line for a
fraction of the cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from relay.core.settings import Settings

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


_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


class _Clock:
    """UTC timestamps, ``2024-05-01T12:00:00.123Z``. Formatting one costs microseconds (strftime, and
    even an f-string with a format spec, on our Python), so the date part is built once per second
    and the whole stamp once per millisecond: lines logged in the same millisecond share it."""

    _second = -1
    _prefix = ""
    _key = -1
    _last = ""

    def stamp(self, created: float) -> str:
        """The timestamp of `created` (seconds since the epoch), to the millisecond, rounded down."""
        key = int(created * 1000)
        if key == self._key:
            return self._last
        second, millis = divmod(key, 1000)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._key, self._last = key, self._prefix + _MILLIS[millis]
        return self._last


class _Formatter(logging.Formatter):
    """Shared by both formats: UTC timestamps (see `_Clock`)."""

    _clock: _Clock | None = None

    def timestamp(self, record: logging.LogRecord) -> str:
        """``2024-05-01T12:00:00.123Z``"""
        if self._clock is None:
            self._clock = _Clock()
        return self._clock.stamp(record.created)

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


REQUEST_MESSAGE = "webhook"
_NULL = "null"
_CACHED_VALUES = 256  # distinct quoted values kept; event types repeat, so a few are enough
_MAX_PENDING = 1000  # lines; a tick that produces more writes them at once instead of holding them


class RequestLog:
    """The edge's one line per request: the same line `TextFormatter` or `JsonFormatter` would
    write for ``logger.info("webhook", extra={outcome, status, entry_id, event_type, bytes, ms})``,
    at a fraction of the cost.

    A LogRecord, the formatter's generic walk over its attributes and a locked, flushed write for
    every line cost a quarter of the edge's whole budget per request (bench/RESULTS.md, "Figures
    behind the code"). When `start` finds that the logger's lines go to exactly one plain ``StreamHandler``
    with one of our formatters (what `configure_logging` installs), each line is rendered from a
    template and buffered, and the lines of one event-loop tick go out in one locked write, flushed
    as the handler would. `stop` writes whatever is left. Whether INFO is enabled is decided there
    too, once.

    Under any other logging set-up (tests capturing records, an embedding application's own
    handlers, filters), and before `start`, every line is an ordinary log call.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._handler: logging.StreamHandler[TextIO] | None = None
        self._enabled = True
        self._json = False
        self._lines: list[str] = []
        self._clock = _Clock()
        self._quoted: dict[str, str] = {}
        self._text_head = f" INFO {logger.name}: {REQUEST_MESSAGE} outcome="
        self._json_head = (
            f'", "level": "INFO", "logger": {_JSON.encode(logger.name)}, '
            f'"message": {_JSON.encode(REQUEST_MESSAGE)}, "outcome": '
        )

    def start(self) -> None:
        """Write lines directly when the logging set-up allows it (see the class docstring).

        Call once logging is configured, on the event loop that serves the requests.
        """
        self.stop()
        handler = _direct_handler(self._logger)
        if handler is None:
            return
        self._handler = handler
        self._json = type(handler.formatter) is JsonFormatter
        self._enabled = self._logger.isEnabledFor(logging.INFO)
        self._quoted.clear()

    def stop(self) -> None:
        """Write the lines still buffered; from now on every line is an ordinary log call."""
        self.flush()
        self._handler = None
        self._enabled = True

    def write(
        self,
        outcome: str,
        status: int,
        size: int,
        event_type: str | None,
        entry_id: bytes | None,
        seconds: float,
    ) -> None:
        """Log how one request ended. `event_type` comes from the request; it is cut short and quoted."""
        if self._handler is None:
            self._log(outcome, status, size, event_type, entry_id, seconds)
            return
        if not self._enabled:
            return
        ms = round(seconds * 1000, 2)
        stamp = self._clock.stamp(time.time())
        entry = entry_id.decode() if entry_id is not None else None
        if event_type is not None:
            event_type = event_type[:LOGGED_TYPE_CHARS]
        if self._json:
            line = (
                f'{{"ts": "{stamp}{self._json_head}{self._quote(outcome)}, "status": {status}, '
                f'"entry_id": {self._quote(entry)}, "event_type": {self._quote(event_type)}, '
                f'"bytes": {size}, "ms": {ms!r}}}'
            )
        else:
            line = f"{stamp}{self._text_head}{self._value(outcome)} status={status}"
            if entry is not None:
                line = f"{line} entry_id={entry}"  # digits and a dash: never quoted
            if event_type is not None:
                line = f"{line} event_type={self._value(event_type)}"
            line = f"{line} bytes={size} ms={ms!r}"
        lines = self._lines
        lines.append(line)
        if len(lines) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a synchronous caller): nothing would flush it later
                self.flush()
        elif len(lines) >= _MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines in one write, under the handler's lock, and flush its stream."""
        lines = self._lines
        handler = self._handler
        if not lines or handler is None:
            return
        self._lines = []
        terminator = handler.terminator
        chunk = terminator.join(lines) + terminator
        with handler.lock or contextlib.nullcontext():
            try:
                handler.stream.write(chunk)
                handler.flush()
            except Exception:  # as logging.Handler.handleError: a broken stream never breaks a request
                if logging.raiseExceptions:
                    sys.stderr.write(f"--- Logging error: {len(lines)} request line(s) lost ---\n")

    def _value(self, value: str) -> str:
        """`value` as the text format writes it, quoted when needed (cached: values repeat)."""
        quoted = self._quoted.get(value)
        if quoted is None:
            quoted = _text_value(value)
            if len(self._quoted) < _CACHED_VALUES:
                self._quoted[value] = quoted
        return quoted

    def _quote(self, value: str | None) -> str:
        """`value` as a JSON string, or null (cached: values repeat)."""
        if value is None:
            return _NULL
        key = "\0" + value  # JSON and text forms share the cache; NUL keeps their keys apart
        quoted = self._quoted.get(key)
        if quoted is None:
            quoted = _JSON.encode(value)
            if len(self._quoted) < _CACHED_VALUES:
                self._quoted[key] = quoted
        return quoted

    def _log(
        self,
        outcome: str,
        status: int,
        size: int,
        event_type: str | None,
        entry_id: bytes | None,
        seconds: float,
    ) -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        self._logger.info(
            REQUEST_MESSAGE,
            extra={
                "outcome": outcome,
                "status": status,
                "entry_id": entry_id.decode() if entry_id is not None else None,
                "event_type": event_type[:LOGGED_TYPE_CHARS] if event_type is not None else None,
                "bytes": size,
                "ms": round(seconds * 1000, 2),
            },
        )


LOGGED_TYPE_CHARS = 64
"""Event types come from the request: the line keeps at most this many characters of one."""


def _direct_handler(logger: logging.Logger) -> logging.StreamHandler[TextIO] | None:
    """The one handler `logger`'s INFO lines reach, when `RequestLog` can write its lines itself:
    a plain ``StreamHandler`` without filters, formatted by `TextFormatter` or `JsonFormatter`."""
    if logger.filters:
        return None
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:  # the walk Logger.callHandlers makes
        handlers.extend(current.handlers)
        current = current.parent if current.propagate else None
    if len(handlers) != 1:
        return None
    [handler] = handlers
    if (
        type(handler) is not logging.StreamHandler
        or handler.filters
        or handler.level > logging.INFO
        or type(handler.formatter) not in (TextFormatter, JsonFormatter)
    ):
        return None
    return handler
