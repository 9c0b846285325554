"""Fixtures of the admin tests: the page served over real HTTP on the session's real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis as sync_redis

from relay.core.settings import Settings
from tests.admin.handlers import BROKEN
from tests.admin.support import admin_registry, admin_settings, hostile_review, running_admin
from tests.cli.cli_support import handle_all
from tests.worker.helpers import store_sync
from worker.registry import Registry


@dataclass
class Admin:
    url: str
    settings: Settings
    registry: Registry
    redis: sync_redis.Redis

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def dead_review(self, user_id: str, **kwargs: str) -> str:
        """Store a hostile review as the edge does and let its handler fail for good; its entry id."""
        [entry_id] = self.dead_reviews([user_id], **kwargs)
        return entry_id

    def dead_reviews(self, user_ids: list[str], **kwargs: str) -> list[str]:
        self.redis.set(BROKEN, 1)
        entry_ids = [store_sync(self.redis, hostile_review(user_id, **kwargs)) for user_id in user_ids]
        handle_all(self.settings, self.registry)
        self.redis.delete(BROKEN)
        return entry_ids


@pytest.fixture
def admin(redis_url: str, client: sync_redis.Redis) -> Iterator[Admin]:
    settings = admin_settings(redis_url)
    registry = admin_registry()
    with running_admin(settings, registry) as url:
        yield Admin(url, settings, registry, client)
