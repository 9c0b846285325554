"""The pages and their JSON twins over real HTTP, on state the real edge and worker code made."""

from __future__ import annotations

import html
import json
import time

import httpx
import redis as sync_redis

from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM, WORKER_HEARTBEAT_PREFIX
from tests.admin.conftest import Admin
from tests.admin.support import (
    BEARER,
    HOSTILE_TEXT,
    HOSTILE_TITLE,
    JSON,
    admin_registry,
    admin_settings,
    running_admin,
)
from tests.cli.cli_support import handle_all, hmac_hex, run_jobs
from tests.support.edge_server import running_edge
from tests.support.redis_server import RedisServer
from tests.support.senders import BOT, SENDER_SETTINGS, topgg_signed, topgg_vote
from tests.support.task_runs import runs
from tests.worker.helpers import store_sync, until, vote_body


def dead_ids(admin: Admin) -> list[str]:
    return [i.decode() for i, _ in admin.redis.xrange("relay:dead")]


def test_search_by_user_id_shows_the_event_escaped_and_its_handler_dead(admin: Admin) -> None:
    entry_id = admin.dead_review("400000000000000001")
    admin.dead_review("400000000000000002")  # another user's: not found
    with admin.client(headers=BEARER) as http:
        page = http.get("/events", params={"user_id": "400000000000000001"})
        data = http.get("/events", params={"user_id": "400000000000000001"}, headers=JSON).json()
    assert page.status_code == 200
    assert HOSTILE_TITLE not in page.text and "<script>alert" not in page.text
    assert html.escape(json.dumps(HOSTILE_TITLE)[1:-1], quote=False)[:20] in page.text
    assert [e["entry_id"] for e in data["events"]] == [entry_id]
    [state] = data["events"][0]["handlers"]
    assert state["handler"] == "moderate_review" and state["state"] == "dead" and state["dead_exists"]
    assert f'href="/dead/{state["outcome"]["dead_id"]}"' in page.text
    assert "\\u003cscript" in http_text(admin, "/events?user_id=400000000000000001")


def http_text(admin: Admin, path: str) -> str:
    with admin.client(headers={**BEARER, **JSON}) as http:
        return http.get(path).text


def test_search_by_guild_and_entry_id_and_the_states_of_handled_events(admin: Admin) -> None:
    vote = store_sync(admin.redis, vote_body(guild_id="555555555555555555"))
    handle_all(admin.settings, admin.registry)
    with admin.client(headers={**BEARER, **JSON}) as http:
        by_guild = http.get("/events", params={"guild_id": "555555555555555555"}).json()
        by_id = http.get("/events", params={"entry_id": vote}).json()
    assert [e["entry_id"] for e in by_guild["events"]] == [vote] == [e["entry_id"] for e in by_id["events"]]
    [state] = by_id["events"][0]["handlers"]
    assert (state["handler"], state["state"]) == ("count_vote", "done") and state["at_ms"] > 0


def test_a_stored_event_not_yet_run_is_queued_and_a_heartbeat_shows_it_running(admin: Admin) -> None:
    vote = store_sync(admin.redis, vote_body())
    with admin.client(headers={**BEARER, **JSON}) as http:
        [state] = http.get("/events", params={"entry_id": vote}).json()["events"][0]["handlers"]
        assert state["state"] == "queued"
        beat = {
            "name": "w-1",
            "host": "box",
            "pid": "42",
            "started_ms": "1",
            "beat_ms": str(int(time.time() * 1000)),
            "jobs_done": "7",
            "running": json.dumps([{"handler": "count_vote", "entry_id": vote, "since_ms": 5}]),
        }
        admin.redis.hset(WORKER_HEARTBEAT_PREFIX + "w-1", mapping=beat)
        [state] = http.get("/events", params={"entry_id": vote}).json()["events"][0]["handlers"]
        assert state["state"] == "running"
        overview = http.get("/").json()
    assert [(w["name"], w["jobs_done"]) for w in overview["stats"]["workers"]] == [("w-1", 7)]
    assert overview["stats"]["workers"][0]["running"][0]["entry_id"] == vote


def test_the_overview_shows_stopped_workers_only_while_they_hold_entries(admin: Admin) -> None:
    vote = store_sync(admin.redis, vote_body())
    admin.redis.xgroup_create(EVENTS_STREAM, CONSUMER_GROUP, id="0")
    admin.redis.xreadgroup(CONSUMER_GROUP, "killed-holding", {EVENTS_STREAM: ">"})  # never acknowledged
    admin.redis.xgroup_createconsumer(EVENTS_STREAM, CONSUMER_GROUP, "killed-empty")
    with admin.client(headers=BEARER) as http:
        page = http.get("/")
        data = http.get("/", headers=JSON).json()
        admin.redis.xack(EVENTS_STREAM, CONSUMER_GROUP, vote)
        after = http.get("/")
    assert [(c["name"], c["pending"]) for c in data["stopped_workers"]] == [("killed-holding", 1)]
    assert "Stopped workers holding entries" in page.text and "killed-holding" in page.text
    assert "killed-empty" not in page.text
    assert "killed-holding" not in after.text and "Stopped workers" not in after.text


def test_malformed_search_is_400_with_the_reason(admin: Admin) -> None:
    with admin.client(headers=BEARER) as http:
        for params, reason in [
            ({"user_id": "12ab"}, "user_id must be a Discord user id"),
            ({"entry_id": "x-1"}, "entry_id must be an event id"),
            ({"guild_id": "1" * 21}, "guild_id must be a Discord server id"),
        ]:
            answer = http.get("/events", params=params)
            assert answer.status_code == 400 and reason in answer.text
        assert http.get("/dead", params={"older_than": "soon"}).status_code == 400


def test_dead_letters_filter_detail_and_unknown_id(admin: Admin) -> None:
    entry_id = admin.dead_review("400000000000000003")
    [dead_id] = dead_ids(admin)
    with admin.client(headers=BEARER) as http:

        def matching(**params: str) -> int:
            return int(http.get("/dead", params=params, headers=JSON).json()["matching"])

        assert matching() == 1
        assert matching(handler="moderate_review", error_type="RuntimeError", newer_than="1h") == 1
        assert matching(handler="count_vote") == 0
        assert matching(error_type="KeyError") == 0
        assert matching(older_than="1h") == 0
        detail = http.get(f"/dead/{dead_id}")
        assert detail.status_code == 200
        assert entry_id in detail.text and "Traceback" in detail.text and "RuntimeError" in detail.text
        assert "<script>alert(1)</script>" not in detail.text and "&lt;script&gt;alert(1)" in detail.text
        assert HOSTILE_TEXT not in detail.text
        body = http.get(f"/dead/{dead_id}", headers=JSON).json()
        assert body["entry_id"] == entry_id and "RuntimeError" in body["traceback"]
        for unknown in ["1-0", "99999999999999-0", "not-an-id"]:
            missing = http.get(f"/dead/{unknown}")
            assert missing.status_code == 404 and "no such dead letter" in missing.text


def test_replay_one_from_the_page_runs_the_handler_with_the_same_event_id(admin: Admin) -> None:
    entry_id = admin.dead_review("400000000000000004")
    [dead_id] = dead_ids(admin)
    with admin.client(headers=BEARER) as http:
        answer = http.post(f"/dead/{dead_id}/replay")
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/events?entry_id={entry_id}"
        assert dead_ids(admin) == []
        [state] = http.get("/events", params={"entry_id": entry_id}, headers=JSON).json()["events"][0][
            "handlers"
        ]
        assert state["state"] == "replayed" and state["outcome"]["dead_id"] == dead_id
        run_jobs(admin.settings, admin.registry)
        [state] = http.get("/events", params={"entry_id": entry_id}, headers=JSON).json()["events"][0][
            "handlers"
        ]
        assert state["state"] == "done"
    assert [(r["handler"], r["event_id"], r["attempt"]) for r in runs(admin.redis)] == [
        ("moderate_review", entry_id, 1)
    ]


def test_replay_of_a_handler_the_tasks_lack_is_refused_and_kept(admin: Admin, redis_url: str) -> None:
    admin.dead_review("400000000000000005")
    [dead_id] = dead_ids(admin)
    empty = admin_registry()
    empty._handlers.pop("moderate_review")
    with (
        running_admin(admin_settings(redis_url), empty) as url,
        httpx.Client(base_url=url, headers=BEARER) as http,
    ):
        answer = http.post(f"/dead/{dead_id}/replay")
    assert answer.status_code == 409 and "moderate_review is not in RELAY_TASKS" in answer.text
    assert dead_ids(admin) == [dead_id]


def test_replay_all_matching_after_a_confirmation_naming_the_count(admin: Admin) -> None:
    entries = [admin.dead_review(f"40000000000000001{i}") for i in range(3)]
    with admin.client(headers=BEARER) as http:
        confirm = http.get("/dead/confirm", params={"action": "replay", "handler": "moderate_review"})
        assert "Replay 3 dead letter(s)?" in confirm.text
        upto = http.get(
            "/dead/confirm", params={"action": "replay", "handler": "moderate_review"}, headers=JSON
        ).json()["upto"]
        later = admin.dead_review("400000000000000019")  # after the confirmation: left alone
        job = http.post(
            "/dead/bulk", data={"action": "replay", "handler": "moderate_review", "upto": upto}, headers=JSON
        ).json()
        assert job["total"] == 3

        def finished() -> dict[str, object] | None:
            status = http.get(f"/dead/jobs/{job['id']}", headers=JSON).json()
            return status if status["finished"] else None

        status = until(finished, 30, "the replay job")
        assert status["done"] == 3 and status["error"] == ""
        assert "Done: 3 of 3" in http.get(f"/dead/jobs/{job['id']}").text
    assert len(dead_ids(admin)) == 1
    run_jobs(admin.settings, admin.registry)
    assert sorted(r["event_id"] for r in runs(admin.redis)) == sorted(entries)
    assert later not in [r["event_id"] for r in runs(admin.redis)]


def test_delete_all_matching(admin: Admin) -> None:
    for i in range(2):
        admin.dead_review(f"40000000000000002{i}")
    with admin.client(headers=BEARER) as http:
        upto = http.get("/dead/confirm", params={"action": "delete"}, headers=JSON).json()["upto"]
        missing = http.post("/dead/bulk", data={"action": "delete"})
        assert missing.status_code == 400
        answer = http.post("/dead/bulk", data={"action": "delete", "upto": upto})
        assert answer.status_code == 303
        until(lambda: not dead_ids(admin), 10, "the deletion")


def test_unknown_job_is_404(admin: Admin) -> None:
    with admin.client(headers=BEARER) as http:
        assert http.get("/dead/jobs/nope").status_code == 404


def test_rejected_shows_refusals_escaped(admin: Admin) -> None:
    body = b'{"event": "<script>alert(1)</script>"}'
    with running_edge(admin.settings) as edge:
        refused = httpx.post(
            f"{edge}/webhook",
            content=body,
            headers={
                "X-Sphere-Signature": hmac_hex(body, "not-the-secret-000000000000"),
                "X-Evil": "<b>x</b>",
            },
        )
        assert refused.status_code == 401
        until(lambda: admin.redis.xlen("relay:rejected"), 10, "the refusal record")
    with admin.client(headers=BEARER) as http:
        page = http.get("/rejected")
        data = http.get("/rejected", headers=JSON).json()
    assert data["refused"] >= 1 and data["latest"][0]["reason"] == "invalid_signature"
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)" in page.text
    assert "<b>x</b>" not in page.text


def test_overview_counts_and_chart(admin: Admin) -> None:
    admin.dead_review("400000000000000030")
    store_sync(admin.redis, vote_body())
    handle_all(admin.settings, admin.registry)
    with admin.client(headers=BEARER) as http:
        page = http.get("/")
        data = http.get("/", headers=JSON).json()
    assert page.status_code == 200 and "<svg" in page.text and "<polyline" in page.text
    assert 'http-equiv="refresh"' in page.text
    assert data["stats"]["dead_letters"] == 1
    totals = {key: sum(m[key] for m in data["minutes"]) for key in ("received", "handled", "failed")}
    assert totals == {"received": 2, "handled": 1, "failed": 1}
    assert len(data["minutes"]) == 60


def test_redis_down_is_a_clear_page_and_loses_nothing(own_redis: RedisServer) -> None:
    settings = admin_settings(own_redis.url)
    registry = admin_registry()
    client = sync_redis.Redis.from_url(own_redis.url)
    admin = Admin("", settings, registry, client)
    admin.dead_review("400000000000000040")
    [dead_id] = dead_ids(admin)
    with running_admin(settings, registry) as url, httpx.Client(base_url=url, headers=BEARER) as http:
        own_redis.kill()  # appendonly, fsync always: restarted, it has every dead letter back
        for answer in [http.get("/"), http.post(f"/dead/{dead_id}/replay"), http.get("/dead")]:
            assert answer.status_code == 503
            assert "Redis is unavailable" in answer.text and "Nothing was changed" in answer.text
        own_redis.start()
        assert dead_ids(admin) == [dead_id]
        assert http.post(f"/dead/{dead_id}/replay").status_code == 303
    assert dead_ids(admin) == []
    client.close()


def test_redis_lost_during_replay_all_says_how_far_it_got_and_keeps_the_rest(own_redis: RedisServer) -> None:
    settings = admin_settings(own_redis.url)
    registry = admin_registry()
    client = sync_redis.Redis.from_url(own_redis.url)
    admin = Admin("", settings, registry, client)
    admin.dead_reviews([f"40000000000000{i:04d}" for i in range(60)])  # 3 s of replays at 20 a second
    with (
        running_admin(settings, registry) as url,
        httpx.Client(base_url=url, headers={**BEARER, **JSON}) as http,
    ):
        upto = http.get("/dead/confirm", params={"action": "replay"}).json()["upto"]
        job = http.post("/dead/bulk", data={"action": "replay", "upto": upto}).json()
        until(lambda: http.get(f"/dead/jobs/{job['id']}").json()["done"] >= 5, 30, "some replays")
        own_redis.kill()  # appendonly, fsync always: every write acknowledged before is kept

        def finished() -> dict[str, object] | None:
            status = http.get(f"/dead/jobs/{job['id']}").json()
            return status if status["finished"] else None

        status = until(finished, 30, "the job to stop")
        page = httpx.get(f"{url}/dead/jobs/{job['id']}", headers=BEARER).text
    assert status["error"] and int(status["done"]) < 60  # type: ignore[call-overload]
    assert "Stopped after" in page and "still dead letters, untouched" in page
    own_redis.start()
    left = client.xlen("relay:dead")
    queued = client.zcard("relay:queue")
    assert left + queued == 60, "each dead letter is either replayed (a job) or still there"
    assert queued >= int(status["done"])  # type: ignore[call-overload]
    client.close()


def test_search_finds_every_senders_events_and_filters_by_source(
    admin: Admin, shared_redis: RedisServer
) -> None:
    settings = admin_settings(shared_redis.url, **SENDER_SETTINGS)
    topgg_body = topgg_vote(user="700000000000000001")
    with running_edge(settings) as url:
        topgg = httpx.post(
            f"{url}/webhook/topgg", content=topgg_body, headers=topgg_signed(topgg_body)
        ).json()["id"]
    sphere = store_sync(admin.redis, vote_body(user_id="700000000000000001"))
    with admin.client(headers={**BEARER, **JSON}) as http:
        by_user = http.get("/events", params={"user_id": "700000000000000001"}).json()["events"]
        only_topgg = http.get("/events", params={"user_id": "700000000000000001", "source": "topgg"}).json()
        by_bot = http.get("/events", params={"guild_id": BOT}).json()["events"]
        refused = http.get("/events", params={"source": "myspace"})
        page = http.get("/events", params={"source": "topgg"}, headers={"Accept": "text/html"}).text
    assert [(e["entry_id"], e["source"]) for e in by_user] == [(sphere, "sphere"), (topgg, "topgg")]
    assert [e["entry_id"] for e in only_topgg["events"]] == [topgg]
    assert only_topgg["search"] == {"user_id": "700000000000000001", "source": "topgg"}
    assert [e["entry_id"] for e in by_bot] == [topgg]
    assert refused.status_code == 400 and "source must be one of sphere, topgg, standard" in refused.text
    assert '<span class="source">topgg</span>' in page
