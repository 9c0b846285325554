"""Standard Webhooks signatures computed here, independently of the `standardwebhooks` package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

FORWARD_SECRET = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()
"""32 distinct bytes: strong enough for the settings' check."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return expected in headers["webhook-signature"].split(" ")


def expected_webhook_id(entry_id: str, url: str) -> str:
    return f"msg_{entry_id}_{hashlib.sha256(url.encode()).hexdigest()[:6]}"
