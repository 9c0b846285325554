"""Signing as top.gg and a Standard Webhooks sender do, computed here with hmac (independently of
relay.core.senders), and sample bodies from their docs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

TOPGG_SECRET = "whs_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
TOPGG_PREVIOUS = "whs_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TOPGG_AUTHORIZATION = "topgg-v0-authorization-4b1e8d"
STANDARD_SECRET = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()
STANDARD_PREVIOUS = "whsec_" + base64.b64encode(bytes(range(50, 82))).decode()

GUILD = "338202622731485185"
BOT = "160105994217586689"
USER = "258317078560243712"


def topgg_vote(vote_id: str = "808499215864008704", weight: int = 1, user: str = USER) -> bytes:
    """A v1 ``vote.create`` shaped as top.gg's docs show it."""
    return json.dumps(
        {
            "type": "vote.create",
            "data": {
                "id": vote_id,
                "weight": weight,
                "created_at": "2026-02-09T00:47:14.2510149+00:00",
                "expires_at": "2026-02-09T12:47:14.2510149+00:00",
                "project": {
                    "id": "803190510032756736",
                    "type": "bot",
                    "platform": "discord",
                    "platform_id": BOT,
                },
                "query": {},
                "user": {"id": "1", "platform_id": user, "name": "username", "avatar_url": "https://x/a.png"},
            },
        }
    ).encode()


def topgg_test() -> bytes:
    data = json.loads(topgg_vote())["data"]
    return json.dumps(
        {"type": "webhook.test", "data": {"user": data["user"], "project": data["project"]}}
    ).encode()


def topgg_legacy(kind: str = "upvote", weekend: bool = False) -> bytes:
    return json.dumps({"bot": BOT, "user": USER, "type": kind, "isWeekend": weekend, "query": ""}).encode()


def topgg_signed(body: bytes, secret: str = TOPGG_SECRET, at: float | None = None) -> dict[str, str]:
    t = int(time.time() if at is None else at)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"x-topgg-signature": f"t={t},v1={digest}", "x-topgg-trace": "trace-1"}


def standard_vote(user: str = USER, test: bool = False) -> bytes:
    return json.dumps(
        {
            "type": "vote.create",
            "timestamp": "2026-02-09T00:47:14Z",
            "data": {"user_id": user, "target_id": GUILD, "test": test},
        }
    ).encode()


def standard_signed(
    body: bytes, msg_id: str = "msg_1", secret: str = STANDARD_SECRET, at: float | None = None
) -> dict[str, str]:
    t = int(time.time() if at is None else at)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{t}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(t),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


SENDER_SETTINGS: dict[str, object] = {
    "topgg_secret": TOPGG_SECRET,
    "previous_topgg_secrets": [TOPGG_PREVIOUS],
    "topgg_authorization": TOPGG_AUTHORIZATION,
    "standard_webhooks_secret": STANDARD_SECRET,
    "previous_standard_webhooks_secrets": [STANDARD_PREVIOUS],
}
"""`make_settings` overrides that turn every sender on."""
