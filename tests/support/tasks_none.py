"""A tasks module with no handlers: a worker running it only forwards (``RELAY_FORWARD_URL``)."""
