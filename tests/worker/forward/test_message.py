"""The forwarded body and its headers (pure); signatures checked with an HMAC computed here."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from standardwebhooks import Webhook

from relay.core.events import parse
from relay.core.senders import parse_stored
from tests.core.test_normalize import TOPGG_VOTE
from tests.worker.forward.signing import FORWARD_SECRET, signature_ok
from tests.worker.helpers import review_body, unknown_body, vote_body
from worker.forward import message


def forwarded(raw: bytes, stored_type: str | None = None) -> bytes:
    event = parse(raw)
    return message.body(
        stored_type=stored_type or event.event,
        entry_id="1-0",
        received_ms=1718000000000,
        event=event,
        payload=raw,
    )


def test_a_vote_carries_its_type_source_normalized_vote_and_original_payload() -> None:
    raw = vote_body(extra_field=[1, 2.50])
    body = json.loads(forwarded(raw))
    original = json.loads(raw)
    assert body == {
        "type": "VOTE_ADD",
        "source": "sphere",
        "event_id": "1-0",
        "received_ms": 1718000000000,
        "vote": {
            "source": "sphere",
            "user_id": original["user_id"],
            "target_id": original["guild_id"],
            "target": "guild",
            "weight": 1,
            "test": False,
            "id": None,
            "created_at": None,
            "expires_at": None,
        },
        "review": None,
        "payload": original,
    }


def test_the_payload_is_spliced_in_byte_for_byte() -> None:
    raw = b'{"event": "VOTE_ADD",  "guild_id": "1", "user_id": "2", "n": 1.50}'
    assert forwarded(raw).endswith(b',"payload":' + raw + b"}")


def test_a_review_carries_the_normalized_review() -> None:
    raw = review_body(stars=4)
    body = json.loads(forwarded(raw))
    assert body["vote"] is None
    assert body["review"]["stars"] == 4
    assert body["review"]["id"] == json.loads(raw)["review"]["id"]
    assert body["review"]["text"] == json.loads(raw)["review"]["content"]["description"]
    assert body["review"]["created_at"] == "2024-06-10T06:13:20Z"


def test_an_event_of_an_unknown_type_is_forwarded_without_a_normalized_part() -> None:
    raw = unknown_body()
    body = json.loads(forwarded(raw))
    assert (body["type"], body["source"], body["vote"], body["review"]) == (
        "GUILD_BOOST",
        "sphere",
        None,
        None,
    )
    assert body["payload"] == json.loads(raw)


def test_the_headers_carry_a_standard_webhooks_signature_of_the_exact_body() -> None:
    data = forwarded(vote_body())
    at = datetime(2026, 12, 6, 20, 0, 0, 900_000, tzinfo=UTC)
    headers = message.signed_headers(Webhook(FORWARD_SECRET), "msg_1-0_abcdef", data, at)
    assert headers["webhook-id"] == "msg_1-0_abcdef"
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    assert signature_ok(FORWARD_SECRET, headers, data)
    assert not signature_ok(FORWARD_SECRET, headers, data + b" ")


def test_another_senders_event_names_its_source_and_its_own_type() -> None:
    raw = json.dumps(TOPGG_VOTE).encode()
    event = parse_stored("topgg:vote.create", raw)
    data = message.body(
        stored_type="topgg:vote.create", entry_id="2-0", received_ms=1, event=event, payload=raw
    )
    body = json.loads(data)
    assert (body["type"], body["source"]) == ("vote.create", "topgg")
    assert (body["vote"]["source"], body["vote"]["target"], body["review"]) == ("topgg", "bot", None)
    assert body["payload"] == TOPGG_VOTE
