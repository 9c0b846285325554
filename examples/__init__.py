"""Longer handler examples; run one with ``RELAY_TASKS=examples.discord``."""
