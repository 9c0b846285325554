"""A bot's endpoint for the relay's forwarded events (docs/forward.md), in FastAPI.

It checks each request's Standard Webhooks signature (and its timestamp: within 5 minutes), and
handles each ``webhook-id`` once: the relay delivers at least once, so a retry or a replay of an
event it already handled is answered 204 and skipped. Run it with::

    RELAY_FORWARD_SECRET=whsec_... PORT=8000 python examples/forward_receiver.py

and point ``RELAY_FORWARD_URL`` at ``http://<this host>:8000/relay``. Replace `handle` with your bot's
work; keep the seen ids in your database rather than in memory, so a restart forgets none.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any

from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook, WebhookVerificationError

SEEN_IDS_KEPT = 100_000
"""Ids remembered (the oldest are forgotten first); the relay retries one event for about two hours."""

SECRET = os.environ.get("RELAY_FORWARD_SECRET", "")
if not SECRET.startswith("whsec_"):
    raise SystemExit("set RELAY_FORWARD_SECRET to the relay's whsec_... secret")
webhook = Webhook(SECRET)  # pip install standardwebhooks
seen: OrderedDict[str, None] = OrderedDict()
app = FastAPI()


def handle(event: dict[str, Any]) -> None:
    """Your bot's work. Raising makes the answer a 500, and the relay delivers the event again later."""
    if event["vote"]:
        print(f"vote from user {event['vote']['user_id']}", flush=True)
    elif event["review"]:
        print(f"{event['review']['stars']}-star review from user {event['review']['user_id']}", flush=True)


@app.post("/relay")
async def receive(request: Request) -> Response:
    body = await request.body()  # the raw bytes: the signature covers them exactly
    try:
        event = webhook.verify(body, dict(request.headers))
    except WebhookVerificationError:
        return Response(status_code=401)
    webhook_id = request.headers["webhook-id"]
    if webhook_id in seen:
        print(json.dumps({"duplicate": webhook_id}), flush=True)
        return Response(status_code=204)  # a 2xx: the relay stops sending this one
    handle(event)
    seen[webhook_id] = None  # only once handled: a failed `handle` is retried
    if len(seen) > SEEN_IDS_KEPT:
        seen.popitem(last=False)
    print(
        json.dumps({"received": webhook_id, "type": event["type"], "event_id": event["event_id"]}), flush=True
    )
    return Response(status_code=204)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
