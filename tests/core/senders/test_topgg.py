"""top.gg's verifier (pure): v1 signatures computed here independently, as top.gg's docs and Python
SDK compute them, and v0's Authorization."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from relay.core.senders.topgg import TopggSender, TopggTest, TopggVote, sign

SECRET = "whs_3bf1c0d9a7e24b6f8e5d2c1a0b9f8e7d"
OLD_SECRET = "whs_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
AUTHORIZATION = "v0-authorization-6c1f9e2ab4d7"
NOW = 1_770_598_034  # 2026-02-09T00:47:14Z, the docs' sample vote

# The Python SDK's tests/mocks/vote_create_payload.json, byte for byte.
SDK_VOTE = b"""{
  "type": "vote.create",
  "data": {
    "id": "808499215864008704",
    "weight": 1,
    "created_at": "2026-02-09T00:47:14.2510149+00:00",
    "expires_at": "2026-02-09T12:47:14.2510149+00:00",
    "project": {
      "id": "803190510032756736",
      "type": "bot",
      "platform": "discord",
      "platform_id": "160105994217586689"
    },
    "user": {
      "id": "160105994217586689",
      "platform_id": "160105994217586689",
      "name": "username",
      "avatar_url": "<avatar url>"
    }
  }
}"""


def expected_header(secret: str, t: int, body: bytes) -> str:
    """As the SDK's test fixture: hmac.new(secret.encode('utf-8'), f'{t}.{body}'.encode('utf-8'), sha256)."""
    text = body.decode("utf-8")
    return f"t={t},v1=" + hmac.new(secret.encode("utf-8"), f"{t}.{text}".encode(), hashlib.sha256).hexdigest()


SENDER = TopggSender([SECRET, OLD_SECRET], [AUTHORIZATION])


def test_the_sdk_vote_signed_as_the_sdk_signs_is_accepted() -> None:
    assert SENDER.verify({"x-topgg-signature": expected_header(SECRET, NOW, SDK_VOTE)}, SDK_VOTE, NOW) is None


def test_sign_matches_the_independent_computation() -> None:
    assert sign(SECRET, NOW, SDK_VOTE) == expected_header(SECRET, NOW, SDK_VOTE)


def test_fixed_vectors_computed_with_openssl_hold() -> None:
    # printf '1700000000.{}' | openssl dgst -sha256 -hmac whs_test_secret_0123456789
    tiny = "3a545e97e5c07e5f1abf7c50bafd5a68e9525447e850f1b1696d8d47a7a28fc2"
    # the same over "1770598034." + SDK_VOTE, keyed with SECRET
    sdk = "90a2c70bdb9f70ddd86026e015847b5a42623cdf020ed2502762f5152825e45a"
    sender = TopggSender(["whs_test_secret_0123456789"], [])

    assert sender.verify({"x-topgg-signature": f"t=1700000000,v1={tiny}"}, b"{}", 1_700_000_000) is None
    assert SENDER.verify({"x-topgg-signature": f"t={NOW},v1={sdk}"}, SDK_VOTE, NOW) is None
    assert sign(SECRET, NOW, SDK_VOTE) == f"t={NOW},v1={sdk}"


def test_the_whole_secret_is_the_key_whs_prefix_included() -> None:
    without_prefix = expected_header(SECRET.removeprefix("whs_"), NOW, SDK_VOTE)

    assert SENDER.verify({"x-topgg-signature": without_prefix}, SDK_VOTE, NOW) == "wrong v1 signature"


def test_a_previous_secret_is_still_accepted() -> None:
    assert (
        SENDER.verify({"x-topgg-signature": expected_header(OLD_SECRET, NOW, SDK_VOTE)}, SDK_VOTE, NOW)
        is None
    )


def test_uppercase_hex_and_extra_fields_are_accepted() -> None:
    header = expected_header(SECRET, NOW, SDK_VOTE)
    t, v1 = header.split(",")
    assert (
        SENDER.verify({"x-topgg-signature": f"{t}, {v1.upper().replace('V1=', 'v1=')},v2=abc"}, SDK_VOTE, NOW)
        is None
    )


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "malformed"),
        ("t=1770598034", "malformed"),
        ("v1=" + "0" * 64, "malformed"),
        ("t=abc,v1=" + "0" * 64, "malformed timestamp"),
        ("t=1770598034,t=1770598034,v1=" + "0" * 64, "malformed"),
        ("t=1770598034,v1=" + "0" * 64, "wrong v1 signature"),
        ("t=1770598034,v1=zz", "wrong v1 signature"),
        ("t=" + "\uff11" * 10 + ",v1=" + "0" * 64, "malformed timestamp"),  # fullwidth digits
    ],
)
def test_a_bad_v1_header_is_refused_with_its_reason(header: str, reason: str) -> None:
    refused = SENDER.verify({"x-topgg-signature": header}, SDK_VOTE, NOW)

    assert refused is not None and reason in refused


def test_a_tampered_body_is_refused() -> None:
    header = expected_header(SECRET, NOW, SDK_VOTE)

    assert SENDER.verify({"x-topgg-signature": header}, SDK_VOTE.replace(b'"weight": 1', b'"weight": 2'), NOW)


@pytest.mark.parametrize(
    ("offset", "word"), [(-301, "stale"), (301, "future"), (-3600, "stale"), (86400, "future")]
)
def test_a_timestamp_over_five_minutes_away_is_refused(offset: int, word: str) -> None:
    t = NOW + offset
    refused = SENDER.verify({"x-topgg-signature": expected_header(SECRET, t, SDK_VOTE)}, SDK_VOTE, NOW)

    assert refused is not None and refused.startswith(word)


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_a_timestamp_within_five_minutes_is_accepted(offset: int) -> None:
    t = NOW + offset
    assert SENDER.verify({"x-topgg-signature": expected_header(SECRET, t, SDK_VOTE)}, SDK_VOTE, NOW) is None


def test_v0_authorization_is_compared_whole() -> None:
    assert SENDER.verify({"authorization": AUTHORIZATION}, b"{}", NOW) is None
    assert SENDER.verify({"authorization": AUTHORIZATION + "x"}, b"{}", NOW) == "wrong v0 authorization"
    assert SENDER.verify({"authorization": AUTHORIZATION[:-1]}, b"{}", NOW) == "wrong v0 authorization"


def test_no_header_is_refused() -> None:
    assert SENDER.verify({}, SDK_VOTE, NOW) == "missing x-topgg-signature (v1) or authorization (v0) header"


def test_a_version_that_is_not_set_up_is_refused() -> None:
    v1_only, v0_only = TopggSender([SECRET], []), TopggSender([], [AUTHORIZATION])

    assert "RELAY_TOPGG_AUTHORIZATION is not set" in str(
        v1_only.verify({"authorization": AUTHORIZATION}, b"", NOW)
    )
    header = expected_header(SECRET, NOW, SDK_VOTE)
    assert "RELAY_TOPGG_SECRET is not set" in str(
        v0_only.verify({"x-topgg-signature": header}, SDK_VOTE, NOW)
    )


def test_the_dedupe_key_of_a_vote_is_its_id_and_of_a_test_its_body() -> None:
    vote = SENDER.parse(SDK_VOTE)
    reserialized = json.dumps(json.loads(SDK_VOTE)).encode()
    test = SENDER.parse(json.dumps({"type": "webhook.test", "data": json.loads(SDK_VOTE)["data"]}).encode())

    assert isinstance(vote, TopggVote) and isinstance(test, TopggTest)
    assert SENDER.dedupe_key(vote, {}, SDK_VOTE) == "topgg:vote:808499215864008704"
    assert SENDER.dedupe_key(SENDER.parse(reserialized), {}, reserialized) == "topgg:vote:808499215864008704"
    assert SENDER.dedupe_key(test, {}, b"x").startswith("topgg:sha256:")
