"""The soak's arithmetic and verdicts (`bench.soak.checks`): each check fails when its condition does."""

from __future__ import annotations

from arq.constants import result_key_prefix

from bench.soak import checks
from relay.core.keys import DEDUPE_PREFIX, EVENTS_STREAM, HANDLED_TOTALS, dedupe_redis_key, outcome_redis_key
from tests.conftest import make_settings

MIB = 2**20


def test_lifetimes_come_from_the_settings() -> None:
    settings = make_settings("redis://unused", retention_seconds=120, dedupe_seconds=60, claim_idle_seconds=5)

    lifetimes = {f.pattern: f.lifetime_s for f in checks.growing_families(settings, trim_every_s=60)}

    assert lifetimes == {
        EVENTS_STREAM: 150,
        DEDUPE_PREFIX + "*": 60,
        outcome_redis_key("*"): 120,
        result_key_prefix + "*": 600,
    }
    longer = make_settings("redis://unused", claim_idle_seconds=300)
    [*_, result] = checks.growing_families(longer)
    assert result.lifetime_s == 1200  # 4 x the claim idle time, once that passes 600 s


def test_keys_are_grouped_by_family() -> None:
    assert checks.family_of(EVENTS_STREAM) == EVENTS_STREAM
    assert checks.family_of(dedupe_redis_key("abc:def")) == DEDUPE_PREFIX + "*"
    assert checks.family_of(result_key_prefix + "1-0:h") == result_key_prefix + "*"
    assert checks.family_of("someone:else:key") == "someone:else:*"
    assert checks.family_of("plain") == "plain"


def test_a_family_without_expiry_fails_unless_it_is_a_bounded_single_key() -> None:
    expiring = [
        (EVENTS_STREAM, -1),
        (HANDLED_TOTALS, -1),
        (dedupe_redis_key("a"), 50),
        (dedupe_redis_key("b"), 12),
    ]
    assert checks.expiry_verdict(checks.count_keys(expiring)).passed

    leaking = [*expiring, (dedupe_redis_key("c"), -1), ("someone:else:1", -1), ("relay:new-single-key", -1)]
    counts = checks.count_keys(leaking)
    verdict = checks.expiry_verdict(counts)

    assert not verdict.passed
    unbounded = [c.family for c in checks.unbounded(counts)]
    assert unbounded == [
        "relay:*",
        DEDUPE_PREFIX + "*",
        "someone:else:*",
    ]  # a new key is not bounded by default
    assert "1 of 3 without expiry" in verdict.detail
    assert not checks.expiry_verdict([]).passed  # no keys at all: nothing was measured


def test_the_sizing_formula() -> None:
    family = checks.Family("f:*", "", lifetime_s=100, lifetime_text="")
    sizes = [checks.FamilySize(family, keys=400, bytes=20_000)]  # 50 bytes per event

    assert sizes[0].bytes_per_event == 50
    assert checks.predicted_plateau(10, sizes, baseline=1000) == 1000 + 10 * 50 * 100
    assert checks.FamilySize(family, 0, 0).bytes_per_event == 0
    with_overhead = checks.FamilySize(family, keys=400, bytes=20_000, key_overhead=30)
    assert with_overhead.bytes_per_event == 80  # Redis's own cost per key counts too
    assert checks.predicted_plateau(10, [with_overhead], baseline=0) == 10 * 80 * 100


def test_the_keys_a_plateau_holds_leave_out_stream_entries() -> None:
    settings = make_settings("redis://unused", retention_seconds=120, dedupe_seconds=60, claim_idle_seconds=5)
    families = checks.growing_families(settings)

    assert checks.keys_at_plateau(20, families) == 20 * (60 + 120 + 600)
    assert checks.keys_at_plateau(0.01, families) == 1000  # never calibrated on a handful


def test_the_memory_verdict_holds_to_twenty_percent() -> None:
    predicted = 10 * MIB
    assert checks.memory_verdict([int(11.9 * MIB), int(11.9 * MIB)], predicted).passed
    assert checks.memory_verdict([int(8.1 * MIB)], predicted).passed
    assert not checks.memory_verdict([int(12.1 * MIB)], predicted).passed
    assert not checks.memory_verdict([int(7.9 * MIB)], predicted).passed
    assert not checks.memory_verdict([], predicted).passed
    assert not checks.memory_verdict([MIB], 0).passed


def test_plateau_samples_are_those_after_every_lifetime() -> None:
    samples = [(0.0, 1), (600.0, 2), (660.0, 3), (700.0, 4)]
    assert checks.plateau_samples(samples, 660) == [3, 4]


def test_rss_is_flat_only_when_the_end_is_not_above_the_settled_part() -> None:
    steady = [50 * MIB] * 4 + [55 * MIB] * 12
    growing = [50 * MIB + i * MIB for i in range(16)]

    assert checks.flat(steady)
    assert not checks.flat(growing)
    assert not checks.flat(steady[:7])  # too few to tell
    assert checks.rss_verdict("edge", steady).passed
    assert not checks.rss_verdict("worker", growing).passed


def test_every_acknowledged_event_must_be_handled() -> None:
    assert checks.handled_verdict(["1-0", "2-0"], ["2-0", "1-0", "1-0"]).passed
    missing = checks.handled_verdict(["1-0", "2-0"], ["1-0"])
    assert not missing.passed and "1 missing (e.g. 2-0)" in missing.detail
    assert not checks.handled_verdict([], []).passed


def test_only_the_running_workers_may_be_consumers() -> None:
    assert checks.consumers_verdict(["w-1"], ["w-1"]).passed
    stale = checks.consumers_verdict(["w-1", "w-killed"], ["w-1"])
    assert not stale.passed and "w-killed" in stale.detail
    assert not checks.consumers_verdict([], []).passed
