"""Retention: the trim point as a pure function, and a real trim that keeps what any group still needs."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from relay.core.keys import CONSUMER_GROUP, EVENTS_STREAM
from relay.core.settings import Settings
from tests.worker.helpers import store, vote_body
from worker.retention import GroupState, after, format_id, parse_id, trim_events, trim_floor

DAY_MS = 86_400_000
NOW = 1_718_000_000_000


async def wait_past(redis: Redis, entry_id: str) -> None:
    """Until Redis's clock has left `entry_id`'s millisecond: with a retention of 0, entries of the
    current millisecond are not yet past it (a fast machine stores and trims within one)."""
    last_ms = parse_id(entry_id)[0]
    for _ in range(1000):  # bounded: a millisecond passes long before
        seconds, micros = await redis.time()
        if int(seconds) * 1000 + int(micros) // 1000 > last_ms:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"Redis's clock did not pass {entry_id}")


def test_ids_parse_and_format() -> None:
    assert parse_id(b"1718000000000-3") == (1718000000000, 3)
    assert parse_id("5") == (5, 0)
    assert format_id((7, 2)) == "7-2"
    assert after((7, 2)) == (7, 3)
    assert after((7, 2**64 - 1)) == (8, 0)


def test_without_groups_the_floor_is_the_retention_cutoff() -> None:
    assert trim_floor(NOW, DAY_MS, []) == (NOW - DAY_MS, 0)


def test_a_group_that_read_and_acknowledged_everything_does_not_hold_the_floor() -> None:
    caught_up = GroupState("relay:workers", last_delivered=(NOW - 5, 0), oldest_pending=None)
    assert trim_floor(NOW, DAY_MS, [caught_up]) == (NOW - DAY_MS, 0)


def test_an_old_pending_entry_holds_the_floor() -> None:
    group = GroupState("relay:workers", last_delivered=(NOW - 5, 0), oldest_pending=(NOW - 3 * DAY_MS, 4))
    assert trim_floor(NOW, DAY_MS, [group]) == (NOW - 3 * DAY_MS, 4)


def test_undelivered_entries_hold_the_floor_just_above_the_last_delivered_one() -> None:
    behind = GroupState("users-own-group", last_delivered=(NOW - 2 * DAY_MS, 7), oldest_pending=None)
    assert trim_floor(NOW, DAY_MS, [behind]) == (NOW - 2 * DAY_MS, 8)


def test_a_group_that_never_read_keeps_everything() -> None:
    fresh = GroupState("users-own-group", last_delivered=(0, 0), oldest_pending=None)
    assert trim_floor(NOW, DAY_MS, [fresh]) == (0, 1)


def test_the_lowest_need_of_all_groups_wins() -> None:
    groups = [
        GroupState("relay:workers", last_delivered=(NOW - 10, 0), oldest_pending=(NOW - 2 * DAY_MS, 0)),
        GroupState("analytics", last_delivered=(NOW - 4 * DAY_MS, 0), oldest_pending=None),
        GroupState("audit", last_delivered=(NOW, 0), oldest_pending=(NOW - 3 * DAY_MS, 1)),
    ]
    assert trim_floor(NOW, DAY_MS, groups) == (NOW - 4 * DAY_MS, 1)


def test_a_retention_longer_than_the_epoch_trims_nothing() -> None:
    assert trim_floor(1000, 10**15, []) == (0, 0)


@pytest.mark.anyio
async def test_trimming_keeps_unacknowledged_and_undelivered_entries(
    redis: Redis, settings: Settings
) -> None:
    ids = [await store(redis, vote_body()) for _ in range(6)]
    await redis.xgroup_create(EVENTS_STREAM, CONSUMER_GROUP, id="0")
    await redis.xgroup_create(EVENTS_STREAM, "users-own-group", id="0")
    # The workers read four entries and acknowledge all but the third.
    [(_stream, read)] = await redis.xreadgroup(CONSUMER_GROUP, "w1", {EVENTS_STREAM: ">"}, count=4)
    await redis.xack(
        EVENTS_STREAM, CONSUMER_GROUP, *[entry_id for entry_id, _ in read if entry_id.decode() != ids[2]]
    )
    # The user's group is further on: it has read and acknowledged five.
    [(_stream, theirs)] = await redis.xreadgroup("users-own-group", "u1", {EVENTS_STREAM: ">"}, count=5)
    await redis.xack(EVENTS_STREAM, "users-own-group", *[entry_id for entry_id, _ in theirs])

    await wait_past(redis, ids[-1])
    removed = await trim_events(redis, retention_ms=0)  # everything is past its retention

    assert removed == 2
    kept = [entry_id.decode() for entry_id, _ in await redis.xrange(EVENTS_STREAM)]
    assert kept == ids[2:]  # the pending third and everything after it


@pytest.mark.anyio
async def test_trimming_respects_another_group_that_is_behind(redis: Redis, settings: Settings) -> None:
    ids = [await store(redis, vote_body()) for _ in range(4)]
    await redis.xgroup_create(EVENTS_STREAM, CONSUMER_GROUP, id="0")
    [(_stream, read)] = await redis.xreadgroup(CONSUMER_GROUP, "w1", {EVENTS_STREAM: ">"})
    await redis.xack(EVENTS_STREAM, CONSUMER_GROUP, *[entry_id for entry_id, _ in read])
    await redis.xgroup_create(EVENTS_STREAM, "users-own-group", id=ids[0])  # has delivered only the first

    await wait_past(redis, ids[-1])
    assert await trim_events(redis, retention_ms=0) == 1
    assert [entry_id.decode() for entry_id, _ in await redis.xrange(EVENTS_STREAM)] == ids[1:]


@pytest.mark.anyio
async def test_entries_within_the_retention_stay(redis: Redis, settings: Settings) -> None:
    for _ in range(3):
        await store(redis, vote_body())
    await redis.xgroup_create(EVENTS_STREAM, CONSUMER_GROUP, id="$")

    assert await trim_events(redis, retention_ms=3_600_000) == 0
    assert await redis.xlen(EVENTS_STREAM) == 3


@pytest.mark.anyio
async def test_trimming_a_missing_stream_does_nothing(redis: Redis, settings: Settings) -> None:
    assert await trim_events(redis, retention_ms=1000) == 0
