"""The admin page in a real Chromium (Debian's, driven by playwright), with a real worker process.

Skipped only where no Chromium is installed (`.ci/run` installs it). Set RELAY_ADMIN_SCREENSHOTS to a
directory to keep the screenshots (docs/ holds the ones the README shows).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis

from relay.core.keys import WORKER_HEARTBEAT_PREFIX
from tests.admin.handlers import BROKEN
from tests.admin.support import (
    HOSTILE_TEXT,
    HOSTILE_TITLE,
    SECRET,
    TOKEN,
    admin_registry,
    admin_settings,
    hostile_review,
    running_admin,
)
from tests.support.task_runs import runs
from tests.support.worker_process import worker_pool
from tests.worker.helpers import store_sync, until, vote_body

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium: apt-get install -y chromium (.ci/run does)"
)

USER = "610000000000000001"


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()
        browser.close()


def screenshot(page: object, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)  # type: ignore[attr-defined]
    keep = os.environ.get("RELAY_ADMIN_SCREENSHOTS")
    if keep:
        shutil.copy(tmp_path / name, Path(keep) / name)


def test_an_operator_finds_replays_and_sees_a_hostile_dead_letter_handled(
    browser_page: object, redis_url: str, client: sync_redis.Redis, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)

    settings = admin_settings(redis_url)
    env = {
        "redis_url": redis_url,
        "secret": SECRET,
        "tasks": "tests.admin.tasks_admin",
        "worker_metrics": "off",
    }
    with worker_pool(tmp_path, env) as pool, running_admin(settings, admin_registry()) as url:
        worker = pool.start("tests.admin.tasks_admin")
        worker.wait_reading(client)
        for _ in range(3):
            store_sync(client, vote_body())
        client.set(BROKEN, 1)
        entry_id = store_sync(client, hostile_review(USER))
        until(lambda: client.xlen("relay:dead"), 30, "the review's dead letter")
        client.delete(BROKEN)  # the handler is fixed; the dead letter waits for a replay
        until(lambda: len(runs(client)) == 3, 30, "the votes handled")
        until(lambda: client.keys(WORKER_HEARTBEAT_PREFIX + "*"), 30, "the worker's heartbeat")

        # A wrong token sees nothing: the same sign-in page, no data.
        page.goto(f"{url}/dead")
        expect(page.locator("h1")).to_have_text("Sign in required")
        page.goto(f"{url}/login")
        page.fill("#token", "not-the-token-of-this-relay")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Sign in required")
        page.goto(f"{url}/dead")
        assert entry_id not in page.content() and "moderate_review" not in page.content()

        # Sign in, see the overview.
        page.goto(f"{url}/login")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Overview")
        expect(page.locator("svg polyline")).to_have_count(3)
        expect(page.locator("main")).to_contain_text(f"· {worker.pid}")  # host · pid, from its heartbeat
        screenshot(page, tmp_path, "admin-overview.png")

        # Find the dead letter whose review text holds markup, open it: shown as text, never run.
        page.click("text=Dead letters")
        page.click(f"tr:has-text('{entry_id}') >> a >> nth=0")
        expect(page.locator("h1")).to_contain_text("Dead letter")
        body = page.locator("#event-body").inner_text()
        assert json.dumps(HOSTILE_TITLE)[1:-1].replace('\\"', '"') in body.replace('\\"', '"')
        assert "<script>" in body and HOSTILE_TEXT.split("<script>")[0] in body
        assert page.locator("main img, main script, main b").count() == 0
        assert page.title() != "pwned" and not dialogs
        screenshot(page, tmp_path, "admin-dead-letter.png")

        # Replay it: the real worker runs the handler; the event's page shows it handled.
        page.click("button:has-text('Replay')")
        expect(page).to_have_url(f"{url}/events?entry_id={entry_id}")
        handled = page.locator("tr[data-handler='moderate_review'][data-state='done']")
        expect(handled).to_be_visible(timeout=30_000)  # the page refreshes itself until then
        assert client.xlen("relay:dead") == 0
        assert [r["event_id"] for r in runs(client) if r["handler"] == "moderate_review"] == [entry_id]

        # Search the event by user id from the form.
        page.click("text=Where is my event?")
        page.fill("input[name=user_id]", USER)
        page.click("button:has-text('Search')")
        expect(page.locator(f"article[data-entry-id='{entry_id}']")).to_be_visible()
        expect(page.locator("article tr[data-handler='moderate_review']")).to_have_attribute(
            "data-state", "done"
        )

    assert not dialogs, dialogs
    assert not csp_errors, csp_errors
