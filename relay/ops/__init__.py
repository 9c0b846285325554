"""What the operator tools share: reading the pipeline's state, the dead letters and the refusals,
and replaying dead letters. Below both `relay.cli` and `relay.admin`, with neither click nor FastAPI."""
