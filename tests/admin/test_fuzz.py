"""Hypothesis fuzzes the search and filter parameters over real HTTP: never a 5xx, never input
reflected unescaped (in the page, or as markup in its JSON twin)."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.admin.conftest import Admin
from tests.admin.support import BEARER, JSON
from tests.cli.cli_support import handle_all
from tests.worker.helpers import store_sync, vote_body

MARKUPS = ["<b>", "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</textarea>", "<i>&</i>"]
"""None of these appears in the pages themselves: found in an answer, it came from the input unescaped."""
MARKUP = st.sampled_from(MARKUPS)
VALUE = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, m, b: a + m + b, st.text(max_size=10), MARKUP, st.text(max_size=10)),
    st.from_regex(r"[0-9]{1,22}(-[0-9]{1,22})?", fullmatch=True),
    st.from_regex(r"[0-9]{1,3}[smhdw]", fullmatch=True),
)
NAMES = st.sampled_from(
    [
        "entry_id",
        "user_id",
        "guild_id",
        "handler",
        "error_type",
        "older_than",
        "newer_than",
        "upto",
        "action",
        "x",
    ]
)
PARAMS = st.dictionaries(NAMES, VALUE, max_size=4)
PATHS = st.sampled_from(["/events", "/dead", "/dead/confirm"])
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def stocked(admin: Admin) -> Admin:
    """The page with a hostile dead letter and a handled event to find (made once per test)."""
    admin.dead_review("700000000000000001")
    store_sync(admin.redis, vote_body(user_id="700000000000000001"))
    handle_all(admin.settings, admin.registry)
    return admin


def assert_escaped(text: str, params: dict[str, str]) -> None:
    for value in params.values():
        for markup in MARKUPS:
            if markup in value:
                assert markup not in text, f"{value!r} reflected unescaped"


@FUZZ
@given(path=PATHS, params=PARAMS)
def test_search_and_filters_never_fail_or_reflect_markup(
    stocked: Admin, path: str, params: dict[str, str]
) -> None:
    with httpx.Client(base_url=stocked.url, headers=BEARER, timeout=10) as http:
        page = http.get(path, params=params)
        twin = http.get(path, params=params, headers=JSON)
    assert page.status_code in (200, 400), (page.status_code, params)
    assert twin.status_code == page.status_code
    assert_escaped(page.text, params)
    assert "<" not in twin.text and ">" not in twin.text, "JSON escapes markup characters"


@FUZZ
@given(dead_id=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and s not in (".", "..")))
def test_any_dead_letter_id_is_404_or_found_never_5xx(stocked: Admin, dead_id: str) -> None:
    with httpx.Client(base_url=stocked.url, headers=BEARER, timeout=10) as http:
        page = http.get("/dead/" + quote(dead_id, safe=""))
    assert page.status_code in (404, 400), (page.status_code, dead_id)
    assert_escaped(page.text, {"id": dead_id})
