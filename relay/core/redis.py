"""The one place Redis clients are built: every process reaches Redis through these functions.

`RELAY_REDIS_URL` is read by redis-py's own URL parser, so it accepts whatever ``from_url`` does
(``rediss://`` with ``ssl_ca_certs``, ACL ``user:password@``, ``unix://``, the db). With
`RELAY_REDIS_SENTINELS`, the primary is found through Sentinel on every (re)connect, so a client
follows a failover without a restart; the URL still gives the credentials, db and TLS options.
`failure` names why a connection failed, and says which failures waiting cannot cure.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel as sentinel
from pydantic import SecretStr
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from relay.core.logs import redact_url


class RedisTarget(Protocol):
    """The settings the clients are built from (`relay.core.settings.RedisAccess`)."""

    redis_url: str
    redis_sentinels: list[tuple[str, int]]
    redis_sentinel_master: str
    redis_sentinel_password: SecretStr | None


def describe(target: RedisTarget) -> str:
    """Where Redis is, fit for a log line or an error: never a password."""
    url = redact_url(target.redis_url)
    if not target.redis_sentinels:
        return url
    sentinels = ",".join(f"{host}:{port}" for host, port in target.redis_sentinels)
    parts = urlsplit(url)
    return f"{target.redis_sentinel_master} via sentinels {sentinels} ({parts.scheme}://, db {_db(target)})"


def _db(target: RedisTarget) -> int:
    return int(redis.connection.parse_url(target.redis_url).get("db", 0))  # type: ignore[no-untyped-call]


class FollowingConnection(aiosentinel.SentinelManagedConnection):
    """A Sentinel-managed connection whose retries ask the Sentinels again each time.

    redis-py retries a connect twice over: around asking the Sentinels, and inside, around connecting
    to the address they gave. With a retrying client (the worker's: 20 tries, ~33 s) the inner loop
    kept knocking on a primary that had just died, so a worker followed a failover only after ~33 s
    (measured in tests/reliability/test_failover.py). Here the inner connect is tried once.
    """

    async def connect_to(self, address: tuple[str, int]) -> None:
        retry, self.retry = self.retry, Retry(NoBackoff(), 0)
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self.retry = retry


class FollowingSSLConnection(FollowingConnection, aioredis.SSLConnection):
    """`FollowingConnection` over TLS."""


class SyncFollowingConnection(sentinel.SentinelManagedConnection):
    """`FollowingConnection` for the blocking client."""

    def connect_to(self, address: tuple[str, int]) -> None:
        retry, self.retry = self.retry, SyncRetry(NoBackoff(), 0)
        try:
            super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self.retry = retry


class SyncFollowingSSLConnection(SyncFollowingConnection, redis.SSLConnection):
    """`SyncFollowingConnection` over TLS."""


@dataclass(frozen=True, slots=True)
class _Kinds:
    """redis-py's connection classes of one flavour (asyncio or blocking)."""

    tcp: type[Any]
    tls: type[Any]
    unix: type[Any]
    managed: type[Any]
    managed_tls: type[Any]


_ASYNC = _Kinds(
    aioredis.Connection,
    aioredis.SSLConnection,
    aioredis.UnixDomainSocketConnection,
    FollowingConnection,
    FollowingSSLConnection,
)
_SYNC = _Kinds(
    redis.Connection,
    redis.SSLConnection,
    redis.UnixDomainSocketConnection,
    SyncFollowingConnection,
    SyncFollowingSSLConnection,
)


def _url_options(target: RedisTarget, kinds: _Kinds, **overrides: Any) -> tuple[bool, dict[str, Any]]:
    """Whether the URL asks for TLS, and redis-py's pool options for it (with `overrides`); with
    Sentinel, without the address, which the Sentinels give on every connect."""
    options = dict(redis.connection.parse_url(target.redis_url))  # type: ignore[no-untyped-call]
    options.update(overrides)
    scheme = urlsplit(target.redis_url).scheme
    tls = scheme == "rediss"
    if target.redis_sentinels:
        options.pop("host", None)
        options.pop("port", None)
        options["connection_class"] = kinds.managed_tls if tls else kinds.managed
        options["is_master"] = True
    else:
        options["connection_class"] = kinds.unix if scheme == "unix" else (kinds.tls if tls else kinds.tcp)
    return tls, options


def _sentinel_options(target: RedisTarget, tls: bool, options: dict[str, Any]) -> dict[str, Any]:
    """How to talk to the Sentinels themselves: their own password, the URL's TLS options."""
    result: dict[str, Any] = {k: v for k, v in options.items() if k.startswith("socket_")}
    if target.redis_sentinel_password is not None:
        result["password"] = target.redis_sentinel_password.get_secret_value()
    if tls:
        result["ssl"] = True
        result.update({k: v for k, v in options.items() if k.startswith("ssl_")})
    return result


class SentinelPool(aiosentinel.SentinelConnectionPool):
    """redis-py's Sentinel pool, whose full disconnect (the client's ``aclose``) also closes the
    connections to the Sentinels, which the client does not own."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # not the idle-only disconnect redis-py does when the primary moved
            for client in self.sentinel_manager.sentinels:
                await client.aclose()


class SyncSentinelPool(sentinel.SentinelConnectionPool):
    """`SentinelPool` for the blocking client."""

    def disconnect(self, inuse_connections: bool = True) -> None:
        super().disconnect(inuse_connections)
        if inuse_connections:
            for client in self.sentinel_manager.sentinels:
                client.close()


def async_pool(
    target: RedisTarget,
    *,
    pool_class: type[aioredis.ConnectionPool] = aioredis.ConnectionPool,
    sentinel_pool_class: type[SentinelPool] = SentinelPool,
    **overrides: Any,
) -> aioredis.ConnectionPool:
    """An asyncio connection pool for `target`; `overrides` are redis-py connection options
    (timeouts, retry). Nothing connects until the first command."""
    tls, options = _url_options(target, _ASYNC, **overrides)
    if not target.redis_sentinels:
        return pool_class(**options)
    sentinels = _sentinel_options(target, tls, options)
    manager = aiosentinel.Sentinel(target.redis_sentinels, sentinel_kwargs=sentinels)  # type: ignore[no-untyped-call]
    return sentinel_pool_class(target.redis_sentinel_master, manager, **options)


def async_client(target: RedisTarget, **overrides: Any) -> aioredis.Redis:
    """An asyncio client for `target` that closes its pool with itself (``aclose``)."""
    return aioredis.Redis.from_pool(async_pool(target, **overrides))


def sync_client(target: RedisTarget, **overrides: Any) -> redis.Redis:
    """A blocking client for `target`, for start-up checks and `make run`."""
    tls, options = _url_options(target, _SYNC, **overrides)
    if not target.redis_sentinels:
        return redis.Redis.from_pool(redis.ConnectionPool(**options))
    sentinels = _sentinel_options(target, tls, options)
    manager = sentinel.Sentinel(target.redis_sentinels, sentinel_kwargs=sentinels)  # type: ignore[no-untyped-call]
    pool = SyncSentinelPool(target.redis_sentinel_master, manager, **options)  # type: ignore[no-untyped-call]
    return redis.Redis.from_pool(pool)


FailureKind = Literal["refused", "tls", "auth", "timeout", "no-primary", "other"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a connection to Redis failed, in words a log line can carry (no password)."""

    kind: FailureKind
    reason: str
    fatal: bool
    """True when waiting cannot cure it (bad credentials, a certificate that does not verify)."""

    def advice(self) -> str:
        if self.kind == "auth":
            return "check the user and password in RELAY_REDIS_URL (and RELAY_REDIS_SENTINEL_PASSWORD with Sentinel)"
        if self.kind == "tls":
            return (
                "check ssl_ca_certs (and the host name) in RELAY_REDIS_URL against the server's certificate"
            )
        return "is Redis running and reachable from here?"


_AUTH_MARKERS = (
    "WRONGPASS",
    "NOAUTH",
    "invalid password",
    "invalid username-password",
    "AuthenticationError",
)
"""Refusals of credentials as messages spell them; the last is how redis-py reports Sentinels that
refused us, inside its MasterNotFoundError."""


def failure(error: BaseException) -> Failure:
    """Classify a failed connect or command (pure: looks only at the exception and its causes)."""
    chain = _chain(error)
    text = " ".join(str(e) for e in chain)
    first = (str(error).splitlines() or [type(error).__name__])[0]
    auth_error = any(isinstance(e, AuthenticationError | AuthenticationWrongNumberOfArgsError) for e in chain)
    if auth_error or any(marker in text for marker in _AUTH_MARKERS):
        return Failure("auth", f"authentication failed: {first}", fatal=True)
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or "CERTIFICATE_VERIFY_FAILED" in text:
        return Failure("tls", f"TLS verification failed: {first}", fatal=True)
    if isinstance(error, aiosentinel.MasterNotFoundError | sentinel.MasterNotFoundError):
        return Failure("no-primary", f"no primary known to the sentinels: {first}", fatal=False)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return Failure("refused", f"connection refused: {first}", fatal=False)
    if any(isinstance(e, RedisTimeoutError | TimeoutError) for e in chain):
        return Failure("timeout", f"timed out: {first}", fatal=False)
    if any(isinstance(e, RedisConnectionError | OSError) for e in chain):
        return Failure("other", f"cannot connect: {first}", fatal=False)
    return Failure("other", f"{type(error).__name__}: {first}", fatal=False)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def check(target: RedisTarget, timeout: float = 2.0) -> Failure | None:
    """One PING, blocking, without retries: None if Redis answers, else why not."""
    client = sync_client(
        target, socket_connect_timeout=timeout, socket_timeout=timeout, retry=SyncRetry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except Exception as error:  # whatever it is, it is the answer
        return failure(error)
    finally:
        client.close()
    return None


async def redis_now_ms(client: aioredis.Redis) -> int:
    """Redis's clock in milliseconds: the clock entry ids come from."""
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000
