"""Forwarding: every stored event POSTed to the bot's own HTTP endpoint(s), signed per Standard Webhooks.

Each URL of ``RELAY_FORWARD_URL`` becomes one built-in handler (`handlers`), so every (event, URL) is
its own job with the registry's retries, dead letters and outcomes. docs/forward.md is the guide.
"""
