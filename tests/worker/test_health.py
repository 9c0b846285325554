"""The health verdict of ``python -m worker.health`` (pure); the process tests are in test_heartbeat.py."""

from __future__ import annotations

from tests.core.test_heartbeat import beat
from worker.health import verdict


def test_health_wants_a_fresh_beat_from_this_host() -> None:
    assert verdict([beat(beat_ms=50_000)], 55_000, "h", None, 15)[0]
    assert not verdict([beat(beat_ms=30_000)], 55_000, "h", None, 15)[0]  # 25 s old: stuck
    assert not verdict([beat()], 50_000, "other-host", None, 15)[0]
    assert not verdict([beat(pid=1)], 50_000, "h", 2, 15)[0]
    assert verdict([beat(pid=1), beat(pid=2)], 50_000, "h", 2, 15)[0]
    healthy, line = verdict([], 50_000, "h", None, 15)
    assert not healthy and line == "unhealthy: no heartbeat from a worker on h"
