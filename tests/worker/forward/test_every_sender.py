"""Every sender's events, posted to a real edge, forwarded by the built-in handler to a real receiver:
each with its own type and source, its normalized vote or review, and its original body."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from tests.conftest import make_settings
from tests.edge.test_webhook import signed
from tests.support.forward_sink import forward_sink
from tests.support.senders import SENDER_SETTINGS, standard_signed, standard_vote, topgg_signed, topgg_vote
from tests.worker.forward.signing import FORWARD_SECRET, signature_ok
from tests.worker.helpers import bridge_all, review_body, run_burst
from tests.worker.test_normalized import deliver
from worker.bridge import Bridge
from worker.forward.handlers import Forwarding, delivery_handlers, with_forwarding
from worker.registry import Registry

pytestmark = pytest.mark.anyio


async def test_each_senders_event_arrives_with_its_source_and_normalized_shape(
    redis: Redis, redis_url: str
) -> None:
    review, topgg, standard = review_body(stars=3), topgg_vote(weight=2), standard_vote()
    with forward_sink() as sink:
        settings = make_settings(
            redis_url, **SENDER_SETTINGS, forward_url=[sink.url], forward_secret=FORWARD_SECRET
        )
        await deliver(
            settings,
            [
                ("/webhook", review, signed(review)),
                ("/webhook/topgg", topgg, topgg_signed(topgg)),
                ("/webhook/standard", standard, standard_signed(standard)),
            ],
        )
        workers_registry = with_forwarding(Registry(), delivery_handlers(settings, Forwarding(settings)))
        await bridge_all(Bridge(redis, workers_registry, settings))
        await run_burst(settings, Registry())  # the worker adds the forwarding handler itself
        received = sink.requests()

    assert all(signature_ok(FORWARD_SECRET, r.headers, r.body) for r in received)
    bodies = {json.loads(r.body)["source"]: (json.loads(r.body), r.body) for r in received}
    assert sorted(bodies) == ["sphere", "standard", "topgg"]
    sphere, raw = bodies["sphere"]
    assert (sphere["type"], sphere["vote"], sphere["review"]["stars"]) == ("REVIEW_ADD", None, 3)
    assert raw.endswith(b',"payload":' + review + b"}")
    top, raw = bodies["topgg"]
    assert (top["type"], top["vote"]["weight"], top["vote"]["source"]) == ("vote.create", 2, "topgg")
    assert raw.endswith(b',"payload":' + topgg + b"}")
    std, raw = bodies["standard"]
    assert (std["type"], std["vote"]["source"], std["review"]) == ("vote.create", "standard", None)
    assert raw.endswith(b',"payload":' + standard + b"}")
