"""Redis as the operator tools see it: its clock, and one line for each way it can fail."""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.core.redis import failure


@dataclass(frozen=True, slots=True)
class RedisProblem:
    message: str
    unreachable: bool
    """True: Redis could not be reached or refused the credentials; False: it answered an error."""


def explain(exc: RedisError, where: str) -> RedisProblem:
    """The one-line account of a Redis failure (none of redis-py's messages holds the password)."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, AuthenticationError):
        return RedisProblem(f"Redis at {where} refused the credentials: {reason}", unreachable=True)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return RedisProblem(f"cannot reach Redis at {where}: {failure(exc).reason}", unreachable=True)
    if isinstance(exc, ResponseError):
        return RedisProblem(f"Redis at {where} answered an error: {reason}", unreachable=False)
    return RedisProblem(f"Redis at {where}: {type(exc).__name__}: {reason}", unreachable=False)
