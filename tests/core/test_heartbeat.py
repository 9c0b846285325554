"""The heartbeat hash (a contract with the admin page and `relay stats`)."""

from __future__ import annotations

from relay.core.heartbeat import Heartbeat, Running


def beat(**values: object) -> Heartbeat:
    fields: dict[str, object] = {
        "name": "h-1-abc",
        "host": "h",
        "pid": 1,
        "started_ms": 1000,
        "beat_ms": 50_000,
    }
    fields.update(values)
    return Heartbeat(**fields)  # type: ignore[arg-type]


def test_the_hash_has_exactly_the_contracts_fields_and_reads_back() -> None:
    original = beat(running=[Running("thank_voter", "1-0", 49_000)], jobs_done=7)
    fields = original.to_hash()

    assert set(fields) == {"name", "host", "pid", "started_ms", "beat_ms", "running", "jobs_done"}
    assert fields["running"] == '[{"handler":"thank_voter","entry_id":"1-0","since_ms":49000}]'
    as_redis_returns_it = {k.encode(): v.encode() for k, v in fields.items()}
    assert Heartbeat.from_hash(as_redis_returns_it) == original


def test_a_damaged_hash_reads_as_empty_values_rather_than_failing() -> None:
    read = Heartbeat.from_hash({b"name": b"w", b"pid": b"x", b"running": b"{not json"})
    assert (read.name, read.pid, read.running, read.beat_ms) == ("w", 0, [], 0)
