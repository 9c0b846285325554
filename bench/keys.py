"""The Redis keys only the bench writes (the relay's own live in `relay.core.keys`)."""

from __future__ import annotations

BASELINE_STREAM = "bench:baseline"
"""The baseline receiver's stream, apart from the relay's so its entries are never mistaken for them."""
