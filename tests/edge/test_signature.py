import hashlib
import hmac

import pytest

from relay.edge.signature import Verifier, sign, verify

BODY = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"2"}'
SECRET = b"s3cret"
EXPECTED = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


def test_sign_is_hex_hmac_sha256_of_raw_body() -> None:
    assert sign(BODY, SECRET) == EXPECTED


@pytest.mark.parametrize(
    "header", [EXPECTED, EXPECTED.upper(), f"sha256={EXPECTED}", f"SHA256={EXPECTED}", f" {EXPECTED} "]
)
def test_accepts_case_prefix_and_whitespace(header: str) -> None:
    assert verify(BODY, header, [SECRET])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        EXPECTED[:-1],
        EXPECTED + "0",
        "z" * 64,
        "é" * 64,  # not ASCII: refused, not an error from compare_digest
        hmac.new(b"other", BODY, hashlib.sha256).hexdigest(),
    ],
)
def test_refuses_missing_malformed_or_wrong(header: str | None) -> None:
    assert not verify(BODY, header, [SECRET])


def test_checks_previous_secrets_too() -> None:
    assert verify(BODY, EXPECTED, [b"new-secret", SECRET])
    assert not verify(BODY, EXPECTED, [b"new-secret"])


def test_any_change_to_the_body_breaks_it() -> None:
    reserialized = b'{"event": "VOTE_ADD", "guild_id": "1", "user_id": "2"}'
    assert not verify(reserialized, EXPECTED, [SECRET])


def test_a_verifier_keyed_once_checks_every_body_and_secret() -> None:
    check = Verifier([b"new-secret", SECRET])
    other = b'{"event":"VOTE_ADD","guild_id":"1","user_id":"3"}'
    other_signature = hmac.new(b"new-secret", other, hashlib.sha256).hexdigest()

    # Each call starts from the keyed state: an earlier body never leaks into the next digest.
    assert check(BODY, EXPECTED)
    assert check(other, other_signature)
    assert check(BODY, f"sha256={EXPECTED.upper()}")
    assert not check(BODY, other_signature)
    assert not check(other, EXPECTED)
    assert not check(BODY, None)
    assert not Verifier([])(BODY, EXPECTED)
