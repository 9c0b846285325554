"""The admin page for tests: a real uvicorn on a free loopback port, and state made by the real
edge and worker code paths (events stored as the edge does, dead letters written by a burst worker)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from relay.admin.app import create_admin_app
from relay.admin.auth import FailureThrottle
from relay.core.events import ReviewAdd, VoteAdd
from relay.core.settings import Settings
from tests.admin.handlers import count_vote, moderate_review
from tests.conftest import make_settings
from tests.support.edge_server import serving
from tests.support.redis_server import free_port
from worker.registry import Registry

SECRET = "k7Qm2vX9pL4rT8wZ3nB6yH1c"
TOKEN = "Zt4Hq8Lm2Xv6Bn9Pw3Kc7Rd5"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Accept": "application/json"}
HOSTILE_TITLE = '<img src=x onerror="alert(1)">Great</title><script>alert("t")</script>'
HOSTILE_TEXT = "<b>so</b> good & <script>document.title='pwned'</script> {{ 7*7 }}"


def admin_settings(redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"secret": SECRET, "previous_secrets": [], "admin_token": TOKEN}
    values.update(overrides)
    return make_settings(redis_url, **values)


def admin_registry() -> Registry:
    """The handlers `tasks_admin` gives the worker processes, registered the same way."""
    registry = Registry()
    registry.on(ReviewAdd, max_attempts=1)(moderate_review)
    registry.on(VoteAdd)(count_vote)
    return registry


def hostile_review(user_id: str, guild_id: str = "222222222222222222", review_id: str | None = None) -> bytes:
    """A REVIEW_ADD whose text a stranger wrote: markup, script and template syntax."""
    data = {
        "event": "REVIEW_ADD",
        "guild_id": guild_id,
        "user_id": user_id,
        "review": {
            "id": review_id or user_id,
            "published_timestamp": 1718000000000,
            "stars": 1,
            "content": {"title": HOSTILE_TITLE, "description": HOSTILE_TEXT},
        },
    }
    return json.dumps(data).encode()


@contextmanager
def running_admin(
    settings: Settings, registry: Registry, *, throttle: FailureThrottle | None = None
) -> Iterator[str]:
    """Serve the admin page with uvicorn in a background thread; yield its base URL."""
    port = free_port()
    app = create_admin_app(settings, registry, throttle=throttle)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_config=None, ws="none")
    with serving(config, name="admin page") as base_url:
        yield base_url


def sign_in(client: httpx.Client, token: str = TOKEN) -> httpx.Response:
    """Sign in through the form, as a browser does: read its CSRF token, post it with the token."""
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    return client.post("/login", data={"csrf": csrf.group(1), "token": token})


def page_csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)
