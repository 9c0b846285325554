"""No handlers: the bench's forwarding run measures the built-in forwarding handler alone."""
