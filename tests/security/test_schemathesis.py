"""schemathesis against the edge's own OpenAPI document (``/openapi.json``), over real HTTP.

Every documented operation gets generated requests, both valid per the schema and deliberately
invalid ones (schemathesis' negative mode: wrong types, missing fields, bad headers). With Redis up,
no answer may be a 5xx. For ``POST /webhook``, whose generated signatures are (almost surely) wrong,
each body is also posted again correctly signed: then the answer must be 2xx, 400 or 422.

The edge documents ``/webhook`` itself (FastAPI cannot see the plain ASGI route: see
`relay.edge.webhook.openapi`), so this also checks that the document and the edge agree enough for a
generator to drive it. Bounded: `MAX_EXAMPLES` per operation and mode; derandomized under ``CI=true`` (conftest.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.core import NotSet
from schemathesis.schemas import BaseSchema

from tests.conftest import SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer

MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def edge_url(shared_redis: RedisServer) -> Iterator[str]:
    with running_edge(make_settings(shared_redis.url, max_body_bytes=16384, openapi=True)) as url:
        yield url


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def api_schema(edge_url: str) -> BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{edge_url}/openapi.json")
    loaded.config.update(base_url=edge_url)
    return loaded


def check_case(case: Case, http: requests.Session) -> None:
    response = case.call(session=http, timeout=10)

    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text)
    if (case.method, case.path) != ("POST", "/webhook") or isinstance(case.body, NotSet):
        return
    if isinstance(case.body, bytes):  # negative mode may send a body that is not JSON at all
        body = case.body
    else:
        try:
            body = json.dumps(case.body).encode()
        except (TypeError, ValueError):  # bytes nested in JSON: nothing a signer would send
            return
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    signed = http.post(
        response.request.url or "",
        data=body,
        headers={"Content-Type": "application/json", "X-Sphere-Signature": signature},
        timeout=10,
    )
    assert signed.status_code in (200, 202, 400, 422), (body[:300], signed.status_code, signed.text)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_generated_request_gets_a_5xx(
    api_schema: BaseSchema, http: requests.Session, mode: GenerationMode
) -> None:
    # schemathesis' own pytest integration (from_fixture) breaks on pytest 9 (it sets a private
    # node id), so each operation's strategy is driven by hypothesis here, as it would.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {
        ("POST", "/webhook"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
    }
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.body or operation.headers or operation.query):
            continue  # nothing to make invalid (the probes take no input)

        @settings(max_examples=MAX_EXAMPLES, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Case) -> None:
            check_case(case, http)

        run()
