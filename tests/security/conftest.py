"""Fixtures and the hypothesis profile for the hostile-input tests.

Profiles (``HYPOTHESIS_PROFILE`` picks one; ``CI=true`` picks ``ci``):

- ``default``: a few hundred examples per property, new ones each run, failures remembered in
  ``.hypothesis/`` and replayed first;
- ``ci``: the same counts, derandomized (the same examples every run, so CI is reproducible) and
  with no example database;
- ``thorough``: many more examples, for a long run by hand.

No deadline anywhere: an example's duration depends on the machine, and no test asserts on time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

from relay.app import EdgeApp, create_app
from tests.conftest import make_settings
from tests.security.asgi import lifespan

settings.register_profile(
    "default",
    deadline=None,
    max_examples=250,
    # One edge and one Redis serve every example of a property on purpose: state carried across
    # examples (a stored entry, a dedupe key, a poisoned batch) is part of what is being tested.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True, database=None)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))

MAX_BODY = 16384
"""The fuzzed edge's body limit: small enough that generated bodies cross it."""


@pytest.fixture
async def edge(redis_url: str) -> AsyncIterator[EdgeApp]:
    """The real edge app, started through its ASGI lifespan against a just-emptied Redis."""
    app = create_app(make_settings(redis_url, max_body_bytes=MAX_BODY, body_timeout=2.0))
    async with lifespan(app):
        yield app
