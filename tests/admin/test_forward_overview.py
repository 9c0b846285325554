"""The overview shows each forwarding destination: events delivered, retrying, dead (real deliveries
to real HTTP receivers, run by an in-process burst worker)."""

from __future__ import annotations

import httpx
import redis as sync_redis
from redis.asyncio import Redis

from tests.admin.support import BEARER, JSON, admin_registry, admin_settings, running_admin
from tests.cli.cli_support import with_redis
from tests.support.forward_sink import Answer, forward_sink
from tests.worker.forward.signing import FORWARD_SECRET
from tests.worker.helpers import bridge_all, run_burst, store_sync, vote_body
from worker.bridge import Bridge
from worker.forward.destination import Destination
from worker.forward.handlers import listed_handlers, with_forwarding


def test_the_overview_shows_each_destinations_deliveries_and_dead_letters(
    redis_url: str, client: sync_redis.Redis
) -> None:
    with forward_sink() as bot, forward_sink() as gone:
        gone.default = Answer(410, body=b"uninstalled")
        urls = [bot.url, gone.url]
        settings = admin_settings(redis_url, forward_url=urls, forward_secret=FORWARD_SECRET)
        listed = with_forwarding(admin_registry(), listed_handlers(urls))
        for _ in range(3):
            store_sync(client, vote_body())

        async def work(redis: Redis) -> None:
            await bridge_all(Bridge(redis, listed, settings))  # the workers' registry: forwarding included
            await run_burst(settings, admin_registry())

        with_redis(redis_url, work)
        with running_admin(settings, listed) as url:
            with httpx.Client(base_url=url, timeout=10, headers=BEARER) as http:
                page = http.get("/")
                data = http.get("/", headers=JSON).json()
    rows = {d["name"]: (d["delivered"], d["retrying"], d["dead"]) for d in data["stats"]["destinations"]}
    assert rows == {Destination(bot.url).name: (3, 0, 0), Destination(gone.url).name: (0, 0, 3)}
    assert page.status_code == 200
    assert f'data-destination="{Destination(gone.url).name}"' in page.text
    assert f"/dead?handler={Destination(gone.url).name}" in page.text
