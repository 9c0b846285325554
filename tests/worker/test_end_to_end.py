"""Edge to handler: signed deliveries posted to a real edge reach the handlers of a real worker process."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest
import redis

from relay.edge.signature import HEADER
from tests.conftest import SECRET, make_settings
from tests.support.edge_server import running_edge
from tests.support.task_runs import runs
from tests.support.worker_process import WorkerPool
from tests.worker.helpers import review_body, unknown_body, until, vote_body


def post(http: httpx.Client, body: bytes) -> str:
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()  # as Sphere signs
    response = http.post(
        "/webhook", content=body, headers={HEADER: signature, "Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.mark.slow
def test_votes_reviews_and_unknown_types_go_from_the_edge_to_their_handlers(
    redis_url: str, client: redis.Redis, workers: WorkerPool
) -> None:
    worker = workers.start("tests.support.tasks_record")
    with running_edge(make_settings(redis_url)) as base_url, httpx.Client(base_url=base_url) as http:
        vote, review, boost = post(http, vote_body()), post(http, review_body()), post(http, unknown_body())

    expected = {
        (vote, "reward_voter", "VoteAdd"),
        (vote, "audit", "VoteAdd"),
        (review, "log_review", "ReviewAdd"),
        (review, "audit", "ReviewAdd"),
        (boost, "audit", "Event"),
    }
    until(lambda: len(runs(client)) >= len(expected), 30, "every handler ran")
    assert sorted((r["event_id"], r["handler"], r["model"]) for r in runs(client)) == sorted(expected)
    assert all(r["attempt"] == 1 for r in runs(client))
    assert worker.running()
