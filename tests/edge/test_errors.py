"""The one mapping from errors to HTTP answers."""

from __future__ import annotations

import json

import pytest

from relay.core.events import InvalidBody, InvalidEvent
from relay.edge.errors import (
    BAD_SIGNATURE,
    INTERNAL_ERROR,
    BadSignature,
    BodyTimeout,
    BodyTooLarge,
    RedisUnavailable,
    answer_for,
    http_error_answer,
)


def document(error: BaseException) -> tuple[int, dict[str, object], dict[bytes, bytes]]:
    answer = answer_for(error)
    headers = dict(answer.headers)
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(answer.body)
    return answer.status, json.loads(answer.body), headers


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BadSignature("wrong secret"), 401, "invalid_signature"),
        (BodyTooLarge("body is over 10 bytes"), 413, "body_too_large"),
        (BodyTimeout("slow"), 408, "body_timeout"),
        (InvalidBody("body is not a JSON object"), 400, "invalid_body"),
        (InvalidEvent([{"field": "review.stars", "message": "too big"}]), 422, "invalid_event"),
        (RedisUnavailable("ConnectionError"), 503, "redis_unavailable"),
        (RuntimeError("a bug"), 503, "internal_error"),
        (KeyError("x"), 503, "internal_error"),
    ],
)
def test_each_error_has_its_status_and_code(error: Exception, status: int, code: str) -> None:
    got_status, body, headers = document(error)

    assert got_status == status
    assert body["error"] == code
    assert (b"retry-after" in headers) == (status == 503)


def test_every_401_is_identical_whatever_the_cause() -> None:
    assert answer_for(BadSignature("missing")) is answer_for(BadSignature("two headers")) is BAD_SIGNATURE
    assert BAD_SIGNATURE.body == b'{"error":"invalid_signature"}'


def test_503_bodies_reveal_nothing_of_the_cause() -> None:
    assert answer_for(RedisUnavailable("Error 111 connecting to 10.0.0.5:6379")).body == (
        b'{"error":"redis_unavailable"}'
    )
    assert answer_for(RuntimeError("secret-ish internals")) is INTERNAL_ERROR
    assert INTERNAL_ERROR.body == b'{"error":"internal_error"}'


def test_422_names_the_fields() -> None:
    _, body, _ = document(InvalidEvent([{"field": "user_id", "message": "String should match pattern"}]))

    assert body["detail"] == [{"field": "user_id", "message": "String should match pattern"}]


@pytest.mark.parametrize(
    ("status", "code"), [(404, "not_found"), (405, "method_not_allowed"), (599, "error")]
)
def test_starlette_refusals_take_the_same_shape(status: int, code: str) -> None:
    answer = http_error_answer(status, "Not Found")

    assert answer.status == status
    assert json.loads(answer.body) == {"error": code, "detail": "Not Found"}
