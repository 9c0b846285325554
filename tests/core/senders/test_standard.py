"""The Standard Webhooks verifier (pure), against the spec's own vector and signatures computed here."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from relay.core.senders.standard import StandardSender, StandardVote

# The reference library's test vector (standard-webhooks, libraries/python/tests/test_webhooks.py).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIME = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OLD = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
NOW = 1_770_000_000


def signature(secret: str, msg_id: str, t: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{t}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    msg_id: str = "msg_1", t: int = NOW, sig: str | None = None, body: bytes = b"{}"
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(t),
        "webhook-signature": sig if sig is not None else signature(SECRET, msg_id, t, body),
    }


SENDER = StandardSender([SECRET, OLD])


def test_the_spec_vector_is_accepted_at_its_time() -> None:
    sender = StandardSender([SPEC_SECRET])
    given = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIME), "webhook-signature": SPEC_SIGNATURE}

    assert signature(SPEC_SECRET, SPEC_ID, SPEC_TIME, SPEC_BODY) == SPEC_SIGNATURE
    assert sender.verify(given, SPEC_BODY, SPEC_TIME + 10) is None
    assert sender.verify(given, SPEC_BODY + b" ", SPEC_TIME) == "wrong signature"


def test_one_good_signature_among_several_is_enough() -> None:
    good = signature(OLD, "msg_1", NOW, b"{}")
    sig = f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,xyz {good}"

    assert SENDER.verify(headers(sig=sig), b"{}", NOW) is None


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_named(missing: str) -> None:
    given = headers()
    del given[missing]

    assert SENDER.verify(given, b"{}", NOW) == f"missing {missing} header"


@pytest.mark.parametrize(("offset", "word"), [(-301, "stale"), (301, "future")])
def test_a_timestamp_over_five_minutes_away_is_refused(offset: int, word: str) -> None:
    refused = SENDER.verify(headers(t=NOW + offset, body=b"{}"), b"{}", NOW)

    assert refused is not None and refused.startswith(word)


@pytest.mark.parametrize("stamp", ["hello", "1.5e9", "-5", "99999999999999999999"])
def test_a_malformed_timestamp_is_refused(stamp: str) -> None:
    given = headers()
    given["webhook-timestamp"] = stamp

    assert SENDER.verify(given, b"{}", NOW) == "malformed timestamp"


def test_the_id_is_signed_too() -> None:
    given = headers()
    given["webhook-id"] = "msg_2"

    assert SENDER.verify(given, b"{}", NOW) == "wrong signature"


def test_the_dedupe_key_is_the_webhook_id() -> None:
    body = b'{"type":"vote.create","data":{"user_id":"1","target_id":"2"}}'
    payload = SENDER.parse(body)

    assert isinstance(payload, StandardVote)
    assert SENDER.dedupe_key(payload, headers("msg_7"), body) == "standard:id:msg_7"
