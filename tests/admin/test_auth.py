"""relay.admin.auth without a server: tokens, session cookies, the failure throttle (explicit clock)."""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer

from relay.admin.auth import FailureThrottle, Tokens

TOKEN = "Zt4Hq8Lm2Xv6Bn9Pw3Kc7Rd5"


def test_bearer_needs_the_scheme_and_the_exact_token() -> None:
    tokens = Tokens(TOKEN)
    assert tokens.bearer(f"Bearer {TOKEN}") is not None
    assert tokens.bearer(f"bearer {TOKEN}") is not None
    for header in [None, "", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer "]:
        assert tokens.bearer(header) is None, header


def test_a_session_cookie_carries_its_csrf_token_and_is_bound_to_the_token() -> None:
    tokens = Tokens(TOKEN)
    cookie, csrf = tokens.issue()
    who = tokens.session(cookie)
    assert who is not None and who.csrf == csrf and TOKEN not in cookie
    assert Tokens(TOKEN + "-rotated").session(cookie) is None, "a new token signs everybody out"
    assert tokens.session(cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]) is None
    assert tokens.session(None) is None and tokens.session("") is None


def test_a_cookie_signed_with_another_key_is_refused() -> None:
    forged = URLSafeTimedSerializer("guess", salt="relay-admin-session").dumps({"csrf": "x"})
    assert Tokens(TOKEN).session(str(forged)) is None


def test_a_session_expires() -> None:
    tokens = Tokens(TOKEN, session_seconds=-1)
    cookie, _ = tokens.issue()
    assert tokens.session(cookie) is None


def test_throttle_lets_a_few_failures_pass_then_doubles_the_wait() -> None:
    throttle = FailureThrottle(free=3, base=1.0, cap=8.0)
    waits = [throttle.failed("10.0.0.1", 100.0) for _ in range(7)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    assert throttle.failed("10.0.0.1", 100.0) == 8.0, "capped"
    assert throttle.wait("10.0.0.1", 103.0) == 5.0
    assert throttle.wait("10.0.0.2", 103.0) == 0.0, "other addresses are not slowed"


def test_throttle_forgets_on_success_and_after_a_quiet_spell() -> None:
    throttle = FailureThrottle(free=0, base=1.0, forget_seconds=60)
    throttle.failed("a", 0.0)
    throttle.succeeded("a")
    assert throttle.wait("a", 0.0) == 0.0
    throttle.failed("b", 0.0)
    throttle.failed("b", 0.0)
    assert throttle.wait("b", 0.5) > 0
    assert throttle.wait("b", 61.0) == 0.0
    assert throttle.failed("b", 61.0) == 1.0, "counting starts again"


def test_throttle_memory_is_bounded() -> None:
    throttle = FailureThrottle(free=0, max_addresses=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert throttle.wait("10.0.3.231", 0.0) > 0, "the latest are remembered"
    assert throttle.wait("10.0.0.0", 0.0) == 0.0, "the oldest were dropped"
