"""The soak's arithmetic and verdicts, pure: key families and their lifetimes, the memory plateau the
sizing formula predicts, flatness of a series of samples, and the report.

The sizing formula (docs/operations.md, "Redis memory"): for each key family that grows with events,
``events per second x bytes per event x lifetime in seconds``; Redis's memory at the plateau is the
sum over the families plus what an empty relay uses.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix

from relay.core.keys import (
    CONSUMER_GROUP,
    DEAD_STREAM,
    DEDUPE_PREFIX,
    EVENTS_STREAM,
    HANDLED_TOTALS,
    MINUTE_PREFIX,
    OUTCOME_PREFIX,
    REJECTED_COUNT,
    REJECTED_STREAM,
    WORKER_HEARTBEAT_PREFIX,
)
from relay.core.settings import Settings
from worker.bridge import BridgeOptions
from worker.jobs import keep_result_seconds
from worker.keys import ARQ_QUEUE, FAILING_PREFIX, ONCE_PREFIX, SKIPPED_PREFIX

WITHIN = 0.20
"""The measured plateau must be within this fraction of the predicted one."""
FLAT_TOLERANCE = 0.05
"""A process's RSS is flat when the last quarter's median is at most this much above the second
quarter's (the first quarter is warm-up)..."""
FLAT_SLACK_BYTES = 1024 * 1024
"""... plus this much, which allocator rounding alone can move."""

BOUNDED_KEYS = frozenset(
    {EVENTS_STREAM, DEAD_STREAM, REJECTED_STREAM, REJECTED_COUNT, ARQ_QUEUE, HANDLED_TOTALS}
)
"""Keys that may live without an expiry: one each, bounded otherwise (the events stream is trimmed to
the retention, the dead letters and refusals are capped or grow only with failures, the queue holds
jobs until they run, the handled totals have one field per handler)."""

PREFIXES = (
    DEDUPE_PREFIX,
    OUTCOME_PREFIX,
    MINUTE_PREFIX,
    WORKER_HEARTBEAT_PREFIX,
    ONCE_PREFIX,
    FAILING_PREFIX,
    SKIPPED_PREFIX,
    result_key_prefix,
    job_key_prefix,
    retry_key_prefix,
    in_progress_key_prefix,
)
"""Every family of keys named ``<prefix><something>`` that the relay and arq write."""


@dataclass(frozen=True, slots=True)
class Family:
    """A key family that grows with events, and how long one event's share of it lives."""

    pattern: str
    holds: str
    lifetime_s: float
    lifetime_text: str


def growing_families(settings: Settings, trim_every_s: float | None = None) -> list[Family]:
    """The families whose size is events per second x lifetime, with lifetimes from `settings`."""
    trim = BridgeOptions().trim_every_seconds if trim_every_s is None else trim_every_s
    retention = settings.retention_seconds
    return [
        Family(
            EVENTS_STREAM,
            "one entry per accepted event (type, raw body, received time, dedupe key)",
            retention + trim / 2,
            f"RELAY_RETENTION_SECONDS + half the trim period ({trim:g} s) on average",
        ),
        Family(
            DEDUPE_PREFIX + "*",
            "the entry id of an event's first delivery",
            settings.dedupe_seconds,
            "RELAY_DEDUPE_SECONDS",
        ),
        Family(
            OUTCOME_PREFIX + "*",
            "per handler, the latest outcome of the event's job",
            retention,
            "RELAY_RETENTION_SECONDS",
        ),
        Family(
            result_key_prefix + "*",
            "arq's record of a finished job (its arguments, so the raw body, and its result)",
            keep_result_seconds(settings),
            "max(600 s, 4 x RELAY_CLAIM_IDLE_SECONDS)",
        ),
    ]


def keys_at_plateau(rate: float, families: Iterable[Family]) -> int:
    """How many keys (not stream entries) the growing families hold at the plateau."""
    return max(1000, round(sum(rate * f.lifetime_s for f in families if f.pattern != EVENTS_STREAM)))


def family_of(key: str) -> str:
    """The family a key belongs to: its own name for a single key, ``<prefix>*`` for the others."""
    if key in BOUNDED_KEYS:
        return key
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return prefix + "*"
    head, sep, _ = key.rpartition(":")
    return f"{head}{sep}*" if sep else key


@dataclass(frozen=True, slots=True)
class KeyCount:
    family: str
    keys: int
    without_expiry: int


def count_keys(keys: Iterable[tuple[str, int]]) -> list[KeyCount]:
    """(key, TTL in seconds as Redis's TTL answers it: -1 means no expiry) grouped by family."""
    totals: dict[str, list[int]] = {}
    for key, ttl in keys:
        counts = totals.setdefault(family_of(key), [0, 0])
        counts[0] += 1
        counts[1] += ttl == -1
    return [KeyCount(family, n, bare) for family, (n, bare) in sorted(totals.items())]


def unbounded(counts: Iterable[KeyCount]) -> list[KeyCount]:
    """Families with a key that has no expiry and is not one of the `BOUNDED_KEYS`."""
    return [c for c in counts if c.without_expiry and c.family not in BOUNDED_KEYS]


@dataclass(frozen=True, slots=True)
class FamilySize:
    """One growing family as measured at the plateau."""

    family: Family
    keys: int
    """Keys (stream entries, for the stream) present."""
    bytes: int
    """Their memory, by MEMORY USAGE."""
    key_overhead: float = 0.0
    """What Redis spends per key beyond MEMORY USAGE (its expiry entry, its share of the hash tables'
    slots), measured apart (`bench.soak.run.key_overhead`); 0 for stream entries, which are not keys."""

    @property
    def bytes_per_event(self) -> float:
        return self.bytes / self.keys + self.key_overhead if self.keys else 0.0


def predicted_plateau(rate: float, sizes: Iterable[FamilySize], baseline: int) -> float:
    """The sizing formula: baseline + sum of rate x bytes per event x lifetime."""
    return baseline + sum(rate * size.bytes_per_event * size.family.lifetime_s for size in sizes)


def within(measured: float, predicted: float, fraction: float = WITHIN) -> bool:
    return predicted > 0 and abs(measured - predicted) <= fraction * predicted


def flat(
    samples: Sequence[float], tolerance: float = FLAT_TOLERANCE, slack: float = FLAT_SLACK_BYTES
) -> bool:
    """Whether a series does not grow: the last quarter's median against the second quarter's.

    Needs at least 8 samples (two per quarter); fewer cannot tell growth from noise, so it is False.
    """
    if len(samples) < 8:
        return False
    quarter = len(samples) // 4
    settled = statistics.median(samples[quarter : 2 * quarter])
    last = statistics.median(samples[-quarter:])
    return last <= settled * (1 + tolerance) + slack


def plateau_samples(samples: Sequence[tuple[float, int]], from_s: float) -> list[int]:
    """Memory samples (seconds since traffic started, bytes) taken once every lifetime had passed."""
    return [value for at, value in samples if at >= from_s]


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


def handled_verdict(acknowledged: Iterable[str], handled: Iterable[str]) -> Verdict:
    acked = set(acknowledged)
    missing = acked - set(handled)
    example = f" (e.g. {min(missing)})" if missing else ""
    return Verdict(
        "every acknowledged event handled",
        bool(acked) and not missing,
        f"{len(acked)} acknowledged, {len(acked) - len(missing)} handled, {len(missing)} missing{example}",
    )


def expiry_verdict(counts: Sequence[KeyCount]) -> Verdict:
    bad = unbounded(counts)
    detail = ", ".join(f"{c.family}: {c.without_expiry} of {c.keys} without expiry" for c in bad)
    return Verdict(
        "every key family that grows with events expires",
        bool(counts) and not bad,
        detail
        or f"{sum(c.keys for c in counts)} keys in {len(counts)} families; all but {len(BOUNDED_KEYS)} bounded single keys expire",
    )


def memory_verdict(measured: Sequence[int], predicted: float) -> Verdict:
    if not measured:
        return Verdict("Redis memory plateau", False, "no sample after every lifetime had passed: run longer")
    mean = statistics.fmean(measured)
    off = (mean - predicted) / predicted if predicted else float("inf")
    return Verdict(
        "Redis memory plateau as predicted",
        within(mean, predicted),
        f"measured {mib(mean)} (mean of {len(measured)} samples), predicted {mib(predicted)}, {off:+.1%} (limit {WITHIN:.0%})",
    )


def rss_verdict(name: str, samples: Sequence[float]) -> Verdict:
    if len(samples) < 8:
        return Verdict(f"{name} RSS flat", False, f"{len(samples)} samples; 8 needed: run longer")
    quarter = len(samples) // 4
    return Verdict(
        f"{name} RSS flat",
        flat(samples),
        f"{mib(statistics.median(samples[quarter : 2 * quarter]))} settled, "
        f"{mib(statistics.median(samples[-quarter:]))} at the end ({len(samples)} samples)",
    )


def consumers_verdict(consumers: Iterable[str], live: Iterable[str]) -> Verdict:
    """`live`: the names of the worker processes running now (the soak's own, with a heartbeat)."""
    names, beating = set(consumers), set(live)
    return Verdict(
        f"only live consumers in {CONSUMER_GROUP}",
        bool(beating) and names == beating,
        f"{len(names)} consumer(s), {len(beating)} worker(s) running"
        + (f"; not live: {sorted(names - beating)}" if names - beating else ""),
    )


def mib(value: float) -> str:
    return f"{value / 2**20:.2f} MiB"


def family_table(rate: float, sizes: Sequence[FamilySize]) -> str:
    """docs/operations.md's table, with this run's measures."""
    lines = [
        "| key pattern | what it holds | lifetime | bytes per event | keys expected (rate x lifetime) | keys present |",
        "|---|---|---|---|---|---|",
    ]
    for size in sizes:
        family = size.family
        lines.append(
            f"| `{family.pattern}` | {family.holds} | {family.lifetime_text} ({family.lifetime_s:g} s here) "
            f"| {size.bytes_per_event:.0f} | {rate * family.lifetime_s:.0f} | {size.keys} |"
        )
    return "\n".join(lines)


def key_table(counts: Sequence[KeyCount]) -> str:
    lines = ["| family | keys | without expiry |", "|---|---|---|"]
    lines += [f"| `{c.family}` | {c.keys} | {c.without_expiry} |" for c in counts]
    return "\n".join(lines)


def restarts_text(kinds: Mapping[str, int]) -> str:
    return ", ".join(f"{count} by {kind}" for kind, count in sorted(kinds.items())) or "none"
