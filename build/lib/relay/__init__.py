"""Sphere Relay: the edge that turns signed Sphere webhooks into Redis stream entries."""
