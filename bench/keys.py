"""The Redis keys only the bench writes (the relay's own live in `relay.core.keys`)."""

from __future__ import annotations

BASELINE_STREAM = "bench:baseline"
"""The baseline receiver's stream, apart from the relay's so its entries are never mistaken for them."""

SOAK_CALIBRATION_PREFIX = "bench:soak:calibration:"
"""Keys the soak writes to a scratch database (db 1) to measure Redis's own cost per key, then deletes."""
