"""What the edge refuses or cannot do, and the one place that turns it into an HTTP answer.

    Exception
    ├── RelayError                  -- carries its HTTP status and a stable `code`
    │   ├── Refused                 -- the request's fault (4xx): resending it unchanged will not help
    │   │   ├── BadSignature        401 invalid_signature  (same answer for every cause)
    │   │   ├── BodyTimeout         408 body_timeout
    │   │   └── BodyTooLarge        413 body_too_large
    │   └── Unavailable             -- ours (503 + Retry-After): Sphere should deliver again later
    │       ├── RedisUnavailable    503 redis_unavailable
    │       └── ShuttingDown        503 shutting_down
    └── ValueError
        ├── events.InvalidBody      400 invalid_body   (not JSON, or not a JSON object)
        └── events.InvalidEvent     422 invalid_event  (names each bad field, never echoes input)

Anything else raised while handling a webhook is a bug: it is answered 503 ``internal_error`` with
``Retry-After`` rather than 500, because 503 is the only 5xx the relay may give and a retry is the
only answer that cannot lose an event (the redelivery is deduplicated if it was stored after all).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import NamedTuple

from starlette.responses import Response

from relay.core.events import InvalidBody, InvalidEvent

RETRY_AFTER_SECONDS = 5
"""What 503 answers put in ``Retry-After``: long enough for a Redis restart or failover."""

_JSON = (b"content-type", b"application/json")
_RETRY_AFTER = (b"retry-after", str(RETRY_AFTER_SECONDS).encode())


class RelayError(Exception):
    """Base of the edge's own errors."""

    status = 500
    code = "error"


class Refused(RelayError):
    """The request itself is wrong; the answer is a 4xx."""


class BadSignature(Refused):
    """Missing, repeated, malformed or wrong ``X-Sphere-Signature``."""

    status = 401
    code = "invalid_signature"


class BodyTimeout(Refused):
    """The client did not finish sending its body in time."""

    status = 408
    code = "body_timeout"


class BodyTooLarge(Refused):
    """The body is over ``RELAY_MAX_BODY_BYTES``, by its Content-Length or as it was read."""

    status = 413
    code = "body_too_large"


class Unavailable(RelayError):
    """The relay cannot store the event now; the answer is 503 with ``Retry-After``."""

    status = 503
    code = "unavailable"


class RedisUnavailable(Unavailable):
    """Redis refused, dropped the connection or did not answer within ``RELAY_REDIS_TIMEOUT``."""

    code = "redis_unavailable"


class ShuttingDown(Unavailable):
    """The edge stopped (a deploy) before the request was done: its grace for requests in flight,
    ``--timeout-graceful-shutdown``, ran out. The sender delivers again, to the next edge."""

    code = "shutting_down"


class Answer(NamedTuple):
    """An HTTP answer as the ASGI server wants it: status, raw headers and a JSON body.

    A named tuple: the webhook builds one per request, and a frozen dataclass costs far more.
    """

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    code: str
    """The ``error`` value, or the ``status`` value for a success; logged as the outcome."""

    @classmethod
    def json(cls, status: int, code: str, document: object, *extra: tuple[bytes, bytes]) -> Answer:
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        headers = (_JSON, (b"content-length", str(len(body)).encode()), *extra)
        return cls(status, headers, body, code)


def error_answer(code: str, status: int, detail: object = None) -> Answer:
    """``{"error": code, "detail": detail}``, with ``Retry-After`` on a 503."""
    document: dict[str, object] = {"error": code}
    if detail is not None:
        document["detail"] = detail
    extra = (_RETRY_AFTER,) if status == 503 else ()
    return Answer.json(status, code, document, *extra)


# Built once: these answers carry nothing from the request. The 401 is deliberately the same
# for every cause so a forger learns nothing about which check failed.
BAD_SIGNATURE = error_answer(BadSignature.code, BadSignature.status)
REDIS_UNAVAILABLE = error_answer(RedisUnavailable.code, RedisUnavailable.status)
INTERNAL_ERROR = error_answer("internal_error", 503)
SHUTTING_DOWN = error_answer(ShuttingDown.code, ShuttingDown.status)


def answer_for(error: BaseException) -> Answer:
    """The HTTP answer for anything raised while handling a webhook (see the module docstring)."""
    if isinstance(error, BadSignature):
        return BAD_SIGNATURE
    if isinstance(error, RedisUnavailable):
        return REDIS_UNAVAILABLE
    if isinstance(error, RelayError):
        return error_answer(error.code, error.status, str(error) or None)
    if isinstance(error, InvalidEvent):
        return error_answer("invalid_event", 422, error.fields)
    if isinstance(error, InvalidBody):
        return error_answer("invalid_body", 400, str(error))
    return INTERNAL_ERROR


def http_error_answer(status: int, detail: str | None = None) -> Answer:
    """Starlette's own refusals (404, 405, ...) in the same shape as ours."""
    try:
        code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        code = "error"
    return error_answer(code, status, detail)


def to_response(answer: Answer, headers: Mapping[str, str] | None = None) -> Response:
    """`answer` as a Starlette response, for the routes FastAPI serves."""
    response = Response(answer.body, answer.status)
    response.raw_headers = [
        *answer.headers,
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    return response
