"""Who may use the admin page: the token, the signed session cookie, CSRF tokens, and slowing guessers.

Pure: no FastAPI and no Redis here; `relay.admin.app` glues these to requests. The session cookie
is signed (itsdangerous, HMAC-SHA256) with a key derived from ``RELAY_ADMIN_TOKEN``, so changing the
token signs every browser out; it carries only a random CSRF token and expires after `SESSION_SECONDS`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "relay_admin_session"
LOGIN_COOKIE = "relay_admin_login"
"""Holds the sign-in form's CSRF token until the form is sent (double submit: no session exists yet)."""
SESSION_SECONDS = 12 * 3600
LOGIN_SECONDS = 3600


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(given.encode(), expected.encode())


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Operator:
    """Who is asking: `csrf` is None for a bearer token (no cookie rides along, so no CSRF to fear)."""

    via: str
    csrf: str | None


class Tokens:
    """Checks the token and issues and reads session cookies."""

    def __init__(self, token: str, *, session_seconds: int = SESSION_SECONDS) -> None:
        self._token = token
        key = hmac.new(token.encode(), b"relay admin session cookie", hashlib.sha256).hexdigest()
        self._serializer = URLSafeTimedSerializer(key, salt="relay-admin-session")
        self.session_seconds = session_seconds

    def is_token(self, given: str) -> bool:
        return same(given, self._token)

    def bearer(self, authorization: str | None) -> Operator | None:
        """The operator an ``Authorization: Bearer <token>`` header names, or None."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not self.is_token(value.strip()):
            return None
        return Operator("bearer", None)

    def issue(self) -> tuple[str, str]:
        """A new session cookie's value and its CSRF token."""
        csrf = new_csrf()
        return str(self._serializer.dumps({"csrf": csrf})), csrf

    def session(self, cookie: str | None) -> Operator | None:
        """The operator a session cookie names, or None if absent, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.session_seconds)
        except BadSignature:  # SignatureExpired is one
            return None
        csrf = data.get("csrf") if isinstance(data, dict) else None
        return Operator("session", csrf) if isinstance(csrf, str) and csrf else None


class FailureThrottle:
    """Slows an address that keeps presenting wrong tokens.

    After `free` failures, each new one makes the address wait before its next attempt: `base`
    seconds, doubling, at most `cap`. An attempt during the wait is refused unchecked, so guessing in
    parallel gains nothing. Forgotten after `forget_seconds` without failure, or on success. At most
    `max_addresses` are remembered (the least recently failing dropped first): memory stays bounded.
    """

    def __init__(
        self,
        *,
        free: int = 3,
        base: float = 1.0,
        cap: float = 30.0,
        forget_seconds: float = 900.0,
        max_addresses: int = 10_000,
    ) -> None:
        self.free, self.base, self.cap = free, base, cap
        self.forget_seconds = forget_seconds
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, tuple[int, float, float]] = OrderedDict()
        """address -> (failures, last failure time, not before)"""

    def wait(self, address: str, now: float) -> float:
        """Seconds `address` must still wait before its next attempt is checked (0: go ahead)."""
        entry = self._failures.get(address)
        if entry is None:
            return 0.0
        _, last, not_before = entry
        if now - last > self.forget_seconds:
            del self._failures[address]
            return 0.0
        return max(0.0, not_before - now)

    def failed(self, address: str, now: float) -> float:
        """Count a failure; returns the seconds the address must now wait."""
        count, last, _ = self._failures.pop(address, (0, now, now))
        if now - last > self.forget_seconds:
            count = 0
        count += 1
        delay = 0.0 if count <= self.free else min(self.cap, self.base * 2 ** (count - self.free - 1))
        self._failures[address] = (count, now, now + delay)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return delay

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
