"""Who may see and do what, over real HTTP: tokens, sessions, CSRF, throttling, headers."""

from __future__ import annotations

import pytest

from relay.admin.auth import LOGIN_COOKIE, SESSION_COOKIE, FailureThrottle
from relay.admin.web import CSP
from tests.admin.conftest import Admin
from tests.admin.support import (
    BEARER,
    JSON,
    TOKEN,
    admin_registry,
    admin_settings,
    page_csrf,
    running_admin,
    sign_in,
)

PAGES = [
    "/",
    "/events",
    "/events?user_id=1",
    "/dead",
    "/dead/1-0",
    "/dead/confirm?action=replay",
    "/dead/jobs/abc",
    "/rejected",
]
ACTIONS = ["/logout", "/dead/1-0/replay", "/dead/1-0/delete", "/dead/bulk"]


def test_every_route_is_listed_here(admin: Admin) -> None:
    """A new page or action must join PAGES or ACTIONS, and so the 401 tests below."""
    from relay.admin.pages import router

    listed = {p.split("?")[0].replace("1-0", "{dead_id}").replace("abc", "{job_id}") for p in PAGES + ACTIONS}
    routes = {route.path for route in router.routes} - {"/login"}  # type: ignore[attr-defined]
    assert routes <= listed | {"/dead/{dead_id}/replay", "/dead/{dead_id}/delete"}, routes - listed


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_401_without_credentials(admin: Admin, path: str) -> None:
    with admin.client() as http:
        page = http.get(path)
        assert page.status_code == 401
        assert "Sign in required" in page.text
        assert http.get(path, headers=JSON).json() == {"error": "unauthorized"}


@pytest.mark.parametrize("path", ACTIONS)
def test_every_action_is_401_without_credentials(admin: Admin, path: str) -> None:
    admin.dead_review("300000000000000001")
    with admin.client() as http:
        assert http.post(path, data={"action": "delete", "upto": "9999999999999-0"}).status_code == 401
    assert admin.redis.xlen("relay:dead") == 1, "nothing may have been deleted"


def test_every_cause_of_refusal_gets_the_same_page(admin: Admin) -> None:
    with admin.client() as http:
        answers = [
            http.get("/"),
            http.get("/", headers={"Authorization": "Bearer wrong-token-of-some-length"}),
            http.get("/", headers={"Authorization": f"Basic {TOKEN}"}),
        ]
    with admin.client(cookies={SESSION_COOKIE: "forged.value.here"}) as http:
        answers.append(http.get("/"))
    assert [a.status_code for a in answers] == [401] * 4
    assert len({a.text for a in answers}) == 1


def test_bearer_token_opens_every_page_and_json_twin(admin: Admin) -> None:
    with admin.client(headers=BEARER) as http:
        for path in ["/", "/events", "/dead", "/rejected"]:
            assert http.get(path).status_code == 200, path
            assert http.get(path, headers=JSON).headers["content-type"].startswith("application/json")


def test_sign_in_gives_an_httponly_strict_expiring_cookie(admin: Admin) -> None:
    with admin.client() as http:
        answer = sign_in(http)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered and "max-age=" in lowered
        assert TOKEN not in cookie
        assert http.get("/").status_code == 200


def test_a_wrong_token_at_sign_in_is_401_and_gets_no_session(admin: Admin) -> None:
    with admin.client() as http:
        answer = sign_in(http, token="not-the-token-at-all-123")
        assert answer.status_code == 401
        assert SESSION_COOKIE not in http.cookies
        assert http.get("/").status_code == 401


def test_sign_in_without_its_csrf_token_is_refused(admin: Admin) -> None:
    with admin.client() as http:
        http.get("/login")
        assert LOGIN_COOKIE in http.cookies
        answer = http.post("/login", data={"token": TOKEN})
        assert answer.status_code == 403
        assert SESSION_COOKIE not in http.cookies


def test_a_post_without_the_csrf_token_is_refused(admin: Admin) -> None:
    entry_id = admin.dead_review("300000000000000002")
    dead_id = admin.redis.xrange("relay:dead")[0][0].decode()
    with admin.client() as http:
        sign_in(http)
        refused = http.post(f"/dead/{dead_id}/delete", data={})
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        stale = http.post(f"/dead/{dead_id}/delete", data={"csrf": "a" * 32})
        assert stale.status_code == 403
        assert admin.redis.xlen("relay:dead") == 1
        csrf = page_csrf(http.get(f"/dead/{dead_id}"))
        done = http.post(f"/dead/{dead_id}/delete", data={"csrf": csrf})
        assert done.status_code == 303
    assert admin.redis.xlen("relay:dead") == 0, entry_id


def test_sign_out_ends_the_session(admin: Admin) -> None:
    with admin.client() as http:
        sign_in(http)
        csrf = page_csrf(http.get("/"))
        assert http.post("/logout", data={"csrf": csrf}).status_code == 303
        assert http.get("/").status_code == 401


def test_every_answer_carries_the_csp_and_friends(admin: Admin) -> None:
    with admin.client() as http:
        for answer in [http.get("/login"), http.get("/"), http.get("/", headers=BEARER), http.get("/nope")]:
            assert answer.headers["content-security-policy"] == CSP
            assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-frame-options"] == "DENY"


def test_pages_hold_no_inline_script(admin: Admin) -> None:
    admin.dead_review("300000000000000003")
    with admin.client(headers=BEARER) as http:
        for path in ["/", "/events?user_id=300000000000000003", "/dead", "/rejected", "/login"]:
            text = http.get(path).text
            assert "<script" not in text.lower(), path


def test_repeated_wrong_tokens_from_one_address_are_slowed(redis_url: str) -> None:
    throttle = FailureThrottle(free=2, base=60.0)
    with running_admin(admin_settings(redis_url), admin_registry(), throttle=throttle) as url:
        import httpx

        wrong = {"Authorization": "Bearer wrong-token-of-some-length"}
        with httpx.Client(base_url=url) as http:
            statuses = [http.get("/", headers=wrong).status_code for _ in range(3)]
            assert statuses == [401, 401, 401]
            # The third failure made the address wait: even the right token is not checked now.
            held = http.get("/", headers=BEARER)
            assert held.status_code == 429
            assert int(held.headers["retry-after"]) >= 1
            assert sign_in(http).status_code == 429
