"""Typed settings shared by the edge, the workers and the `relay` command.

Every value comes from the environment with the prefix ``RELAY_`` (or a ``.env`` file in the working
directory). Settings are built when a process starts (`load_settings`), never at import time, so tests
pass their own `Settings(...)`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url

from relay.core.networks import Network, parse_network

#: Keys printed in Sphere's guide. Running with one of them means anybody can forge events.
SAMPLE_SECRETS = frozenset(
    {
        "126f6954b62cd81a11bc0adf42e571ec129bb8883c3c34d82da1e42f84a27cab",
        "ВАШ_СЕКРЕТНЫЙ_КЛЮЧ",
        # The Standard Webhooks spec's and its libraries' example secret.
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
)

MIN_SECRET_LENGTH = 16
"""Shorter keys are refused: a real listing's key is far longer, a short one is a stand-in or guessable."""

_PLACEHOLDER = re.compile(r"[<>]|change[-_ ]?me|your.*(secret|key)|secret[-_ ]?key[-_ ]?here", re.IGNORECASE)
"""Text a person writes in place of a key: ``<your listing's secret key>``, ``changeme``, ``your-secret``."""

_WHERE = "copy your listing's secret key from Sphere (the listing's webhook settings, beside its URL)"


ADMIN_TOKEN_MIN_CHARS = 16
"""The web page's token is typed once per browser: long enough that guessing it is hopeless."""


def _refuse_weak(
    secret: SecretStr, where: str = _WHERE, prefix: str = "", guide: str = "Sphere's guide"
) -> SecretStr:
    value = secret.get_secret_value().strip()
    if not value:
        raise ValueError(f"must not be empty; {where}")
    if value in SAMPLE_SECRETS:
        raise ValueError(f"must not be the sample key printed in {guide}; {where}")
    if _PLACEHOLDER.search(value):
        raise ValueError(f"is a placeholder, not a key; {where}")
    if not value.startswith(prefix):
        raise ValueError(f"must start with {prefix}; {where}")
    if len(value) - len(prefix) < MIN_SECRET_LENGTH:
        raise ValueError(f"is shorter than {MIN_SECRET_LENGTH} characters; {where}")
    return SecretStr(value)


_TOPGG_WHERE = "copy the whs_... secret top.gg shows under your project's Webhooks, after saving the URL"
_TOPGG_V0_WHERE = (
    "type the same long random value (openssl rand -hex 24) in your bot's webhook Authorization on top.gg"
)
_STANDARD_WHERE = (
    "use the whsec_... secret your sender gave you, or make one: echo whsec_$(openssl rand -base64 32)"
)


def _refuse_weak_standard(secret: SecretStr) -> SecretStr:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 24 to 64 random bytes (the spec's rule)."""
    secret = _refuse_weak(secret, _STANDARD_WHERE, "whsec_", "the Standard Webhooks spec")
    try:
        key = base64.b64decode(secret.get_secret_value().removeprefix("whsec_"), validate=True)
    except ValueError:
        raise ValueError(f"is not whsec_ and base64; {_STANDARD_WHERE}") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"must hold 24 to 64 bytes (base64 after whsec_); {_STANDARD_WHERE}")
    return secret


NO_SENDER = "no sender is set up"
"""How start-up refuses settings that enable no route at all (`relay.cli.devrun` looks for it)."""


def weak_secret_reason(secret: str, variable: str = "RELAY_SECRET") -> str | None:
    """Why `secret` would be refused at start-up as `variable` (``RELAY_SECRET``, ``RELAY_TOPGG_SECRET``,
    ...), or None: for tools that sign with it (``relay send``)."""
    checks: dict[str, Callable[[SecretStr], SecretStr]] = {
        "RELAY_SECRET": _refuse_weak,
        "RELAY_TOPGG_SECRET": lambda s: _refuse_weak(s, _TOPGG_WHERE, "whs_"),
        "RELAY_TOPGG_AUTHORIZATION": lambda s: _refuse_weak(s, _TOPGG_V0_WHERE),
        "RELAY_STANDARD_WEBHOOKS_SECRET": _refuse_weak_standard,
    }
    try:
        checks[variable](SecretStr(secret))
    except ValueError as error:
        return str(error)
    return None


FORWARD_SECRET_PREFIX = "whsec_"
FORWARD_SECRET_MIN_BYTES = 24
"""Standard Webhooks asks for 24 to 64 random bytes; fewer is a stand-in or guessable."""

_MAKE_FORWARD_SECRET = "make one with: echo whsec_$(openssl rand -base64 32)"


def forward_secret_bytes(value: str) -> bytes:
    """The key a ``whsec_`` secret stands for, or ValueError saying what is wrong (never the value)."""
    if not value.startswith(FORWARD_SECRET_PREFIX):
        raise ValueError(f"must start with {FORWARD_SECRET_PREFIX}; {_MAKE_FORWARD_SECRET}")
    encoded = value.removeprefix(FORWARD_SECRET_PREFIX)
    try:  # strict: the signing library skips characters outside base64, which would shorten the key
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not base64 after {FORWARD_SECRET_PREFIX}; {_MAKE_FORWARD_SECRET}") from None
    if len(key) < FORWARD_SECRET_MIN_BYTES or len(set(key)) < 8:
        raise ValueError(
            f"is weak: fewer than {FORWARD_SECRET_MIN_BYTES} random bytes after {FORWARD_SECRET_PREFIX}; "
            + _MAKE_FORWARD_SECRET
        )
    return key


def check_forward_url(value: str, position: int) -> str:
    """One destination of ``RELAY_FORWARD_URL``: an absolute http(s) URL. Errors never echo it (a URL
    may carry a token)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"URL {position} is not an http:// or https:// URL with a host, e.g. https://bot.example.com/relay"
        )
    if parts.fragment:
        raise ValueError(f"URL {position} has a #fragment, which is never sent; remove it")
    return value


def forward_urls(value: object) -> object:
    """``RELAY_FORWARD_URL``'s comma-separated URLs as a list, each checked (`check_forward_url`)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        urls = [check_forward_url(str(url), n) for n, url in enumerate(value, 1)]
        if len(set(urls)) != len(urls):
            raise ValueError("lists the same URL twice; give each destination once")
        return urls
    return value


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# --- Redis: where it is, how to reach it, how many replicas an acknowledgement waits for (issue 14) ---


class RedisAccess(BaseSettings):
    """How every process reaches Redis (`relay.core.redis` builds the clients); shared by `Settings`
    and the ``relay`` command's own settings."""

    redis_url: str = "redis://localhost:6379/0"
    """What redis-py's ``from_url`` takes: ``redis://``, ``rediss://`` (with ``?ssl_ca_certs=`` and the
    other ``ssl_*`` options), ``user:password@``, ``unix://``, the db. With Sentinel, its host and port
    are ignored and the rest still applies."""

    redis_sentinels: Annotated[list[tuple[str, int]], NoDecode] = Field(default_factory=list)
    """Comma-separated ``host:port`` of Redis Sentinels; when set, the primary is found through them."""

    redis_sentinel_master: str = Field(default="mymaster", min_length=1)
    """The name the Sentinels monitor the primary under."""

    redis_sentinel_password: SecretStr | None = None
    """The Sentinels' own password (``requirepass`` in sentinel.conf), when they have one."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        check_redis_url(value)
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinels(cls, value: object) -> object:
        if isinstance(value, str):
            return [parse_host_port(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_need_tcp(cls, value: list[tuple[str, int]], info: ValidationInfo) -> list[tuple[str, int]]:
        if value and str(info.data.get("redis_url", "")).startswith("unix:"):
            raise ValueError("cannot be used with a unix:// RELAY_REDIS_URL; use redis:// or rediss://")
        return value


def check_redis_url(value: str) -> None:
    """Refuse what redis-py's ``from_url`` would refuse (its own parser decides), with a message that
    never holds the URL: it may carry a password."""
    try:
        parse_url(value)  # type: ignore[no-untyped-call]
    except ValueError as error:
        reason = "an option has a bad value" if "Invalid value" in str(error) else "not a Redis URL"
        raise ValueError(
            f"{reason}; expected redis://[user:password@]host:port/db, rediss://... "
            "(?ssl_ca_certs=/path/ca.crt ...) or unix:///path/redis.sock"
        ) from None


def parse_host_port(value: str) -> tuple[str, int]:
    """``"10.0.0.5:26379"`` as ``("10.0.0.5", 26379)``; ``[::1]:26379`` for IPv6."""
    host, _, port = value.strip().rpartition(":")
    host = host.strip().strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("each sentinel must be host:port (comma-separated), e.g. 10.0.0.5:26379")
    return host, int(port)


class Retention(BaseSettings):
    """How long the relay keeps what it was given; shared by `Settings` and the ``relay`` command's own
    settings."""

    retention_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    """How long acknowledged entries stay in ``relay:events`` for replay (and replayed jobs may wait)."""

    @property
    def retention_ms(self) -> int:
        """`retention_seconds` as Redis expiries and arq's job expiry take it."""
        return self.retention_seconds * 1000


class Settings(RedisAccess, Retention):
    """All knobs of the relay. Field names map to ``RELAY_<NAME>`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="RELAY_", env_file=".env", extra="ignore")

    secret: SecretStr | None = None
    """Sphere's webhook secret (the listing's key): signatures are checked against it first. Unset:
    ``POST /webhook`` answers 404 (another sender must then be set)."""

    previous_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Comma-separated older secrets still accepted, so a secret can be rotated without downtime."""

    # The other senders (relay/core/senders): each is on only when its secret is set.
    topgg_secret: SecretStr | None = None
    """top.gg v1's ``whs_...`` secret; ``POST /webhook/topgg`` checks ``x-topgg-signature`` with it."""
    previous_topgg_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    topgg_authorization: SecretStr | None = None
    """top.gg v0 (legacy): the value top.gg sends in ``Authorization``."""
    previous_topgg_authorizations: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    standard_webhooks_secret: SecretStr | None = None
    """A Standard Webhooks sender's ``whsec_...`` secret, for ``POST /webhook/standard``."""
    previous_standard_webhooks_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    max_body_bytes: int = Field(default=65536, gt=0)
    dedupe_seconds: int = Field(default=3600, gt=0)
    """How long a delivery is remembered; a byte-identical redelivery within it is dropped."""

    redis_timeout: float = Field(default=2.0, gt=0)
    """Seconds the edge waits for Redis before answering 503."""

    body_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client may take to send a body that did not arrive at once; a slower one gets 408."""

    allowed_sources: Annotated[list[Network], NoDecode] = Field(default_factory=list)
    """Comma-separated networks (CIDR, IPv4 or IPv6) that may post webhooks; empty: any (`relay.edge.allowlist`)."""

    trusted_proxies: Annotated[list[Network], NoDecode] = Field(default_factory=list)
    """Comma-separated networks of reverse proxies whose ``X-Forwarded-For`` the allow-list believes."""

    tasks: str = "worker.tasks"
    """The module whose ``@on`` handlers the workers run."""

    claim_idle_seconds: float = Field(default=60.0, gt=0)
    """A stream entry read but not acknowledged for this long (its worker died) is taken over by another."""

    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    metrics: str = "on"
    """Edge metrics: ``on`` (``GET /metrics`` on the edge's own port), ``off``, or ``[host:]port`` to serve
    them on that address only."""

    worker_metrics: str = "127.0.0.1:9100"
    """Worker metrics: ``off``, or the ``[host:]port`` where a worker serves ``/metrics`` (the first it tries).
    This host only by default (``on``); a bare port listens on every interface, as the compose file
    asks so that Prometheus reaches each replica."""

    worker_metrics_ports: int = Field(default=16, ge=1, le=1000)
    """How many ports from ``worker_metrics`` on a worker tries, so that workers sharing a host each get one."""

    openapi: bool = False
    """Serve ``/docs`` and ``/openapi.json`` on the edge's port. Off by default: that port is the public
    one Sphere posts to, and the document tells a scanner what runs there."""

    # --- Replicas an acknowledgement waits for (issue 14) ---
    min_replicas: int = Field(default=0, ge=0)
    """Replicas that must confirm (Redis ``WAIT``) an event before the edge answers 2xx; 0: don't wait."""

    replica_timeout: float = Field(default=0.5, gt=0)
    """Seconds the edge waits for ``min_replicas`` confirmations before answering 503."""

    # -- worker concurrency (issue 13) --
    worker_concurrency: int = Field(default=100, ge=1, le=10_000)
    """Handler jobs one worker process runs at once (arq's ``max_jobs``); ``@on(..., concurrency=N)``
    limits one handler further."""

    # The operator's web page (`relay admin`, relay/admin/).
    admin_address: str = "127.0.0.1:3267"
    """``[host:]port`` where ``relay admin`` listens; this host only by default."""

    admin_token: SecretStr | None = None
    """The page's sign-in token (also ``Authorization: Bearer``); ``relay admin`` refuses to start without one."""

    # -- forwarding every event to the bot's own HTTP endpoint(s) (issue 23, docs/forward.md) --
    forward_url: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated http(s) URLs; each gets every stored event, signed per Standard Webhooks."""

    forward_secret: SecretStr | None = Field(default=None, validate_default=True)
    """The ``whsec_...`` key forwarded events are signed with; required when ``forward_url`` is set."""

    forward_concurrency: int = Field(default=8, ge=1, le=1000)
    """Deliveries to one destination at once, per worker process."""

    forward_timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds one delivery attempt may take; a slower answer counts as a failed attempt."""

    @field_validator("forward_url", mode="before")
    @classmethod
    def _forward_urls(cls, value: object) -> object:
        return forward_urls(value)

    @field_validator("forward_secret")
    @classmethod
    def _forward_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            if info.data.get("forward_url"):
                raise ValueError(
                    f"is required when RELAY_FORWARD_URL is set (receivers check it); {_MAKE_FORWARD_SECRET}"
                )
            return None
        secret = value.get_secret_value().strip()
        forward_secret_bytes(secret)
        return SecretStr(secret)

    @field_validator("secret")
    @classmethod
    def _secret_is_real(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _refuse_weak(value)

    @field_validator(
        "previous_secrets",
        "previous_topgg_secrets",
        "previous_topgg_authorizations",
        "previous_standard_webhooks_secrets",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("previous_secrets")
    @classmethod
    def _previous_are_real(cls, values: list[SecretStr]) -> list[SecretStr]:
        return [_refuse_weak(v) for v in values]

    @field_validator("topgg_secret", "previous_topgg_secrets")
    @classmethod
    def _topgg_secrets_are_real(cls, value: SecretStr | list[SecretStr] | None) -> object:
        return _each(value, lambda s: _refuse_weak(s, _TOPGG_WHERE, "whs_"))

    @field_validator("topgg_authorization", "previous_topgg_authorizations")
    @classmethod
    def _topgg_authorizations_are_real(cls, value: SecretStr | list[SecretStr] | None) -> object:
        return _each(value, lambda s: _refuse_weak(s, _TOPGG_V0_WHERE))

    @field_validator("standard_webhooks_secret", "previous_standard_webhooks_secrets")
    @classmethod
    def _standard_secrets_are_real(cls, value: SecretStr | list[SecretStr] | None) -> object:
        return _each(value, _refuse_weak_standard)

    @model_validator(mode="after")
    def _some_sender_is_on(self) -> Settings:
        if not (
            self.secret or self.topgg_secret or self.topgg_authorization or self.standard_webhooks_secret
        ):
            raise ValueError(
                f"{NO_SENDER}: set RELAY_SECRET to your Sphere listing's key, or a secret of another "
                "sender (RELAY_TOPGG_SECRET, RELAY_TOPGG_AUTHORIZATION, RELAY_STANDARD_WEBHOOKS_SECRET)"
            )
        return self

    @field_validator("allowed_sources", "trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [parse_network(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("metrics")
    @classmethod
    def _edge_metrics(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("on", "off"):
            return value
        host, port = listen_address(value)
        return f"{host}:{port}"

    @field_validator("worker_metrics")
    @classmethod
    def _worker_metrics(cls, value: str) -> str:
        value = value.strip().lower()
        if value == "off":
            return value
        host, port = listen_address("127.0.0.1:9100" if value == "on" else value)
        return f"{host}:{port}"

    @field_validator("admin_address")
    @classmethod
    def _admin_address(cls, value: str) -> str:
        host, port = listen_address(value)
        return f"{host}:{port}"

    @field_validator("admin_token")
    @classmethod
    def _admin_token_is_strong(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value().strip()
        if len(token) < ADMIN_TOKEN_MIN_CHARS:
            raise ValueError(
                f"must be at least {ADMIN_TOKEN_MIN_CHARS} characters; make one with: openssl rand -hex 24"
            )
        secrets = [info.data.get("secret"), *info.data.get("previous_secrets", [])]
        if any(isinstance(s, SecretStr) and s.get_secret_value() == token for s in secrets):
            raise ValueError("must differ from RELAY_SECRET: give the page a token of its own")
        return SecretStr(token)

    def signing_keys(self) -> tuple[bytes, ...]:
        """Sphere's current secret, then the previous ones, as bytes for HMAC (none when unset)."""
        return tuple(s.encode() for s in _values(self.secret, self.previous_secrets))

    def topgg_secrets(self) -> tuple[str, ...]:
        """top.gg v1's current secret, then the previous ones (none when v1 is off)."""
        return _values(self.topgg_secret, self.previous_topgg_secrets)

    def topgg_authorizations(self) -> tuple[str, ...]:
        """top.gg v0's current ``Authorization`` value, then the previous ones (none when v0 is off)."""
        return _values(self.topgg_authorization, self.previous_topgg_authorizations)

    def standard_webhooks_secrets(self) -> tuple[str, ...]:
        """The Standard Webhooks sender's current secret, then the previous ones (none when it is off)."""
        return _values(self.standard_webhooks_secret, self.previous_standard_webhooks_secrets)


def _values(current: SecretStr | None, previous: list[SecretStr]) -> tuple[str, ...]:
    """A sender's secrets, current first; its previous ones count only while a current one is set."""
    return tuple(s.get_secret_value() for s in (current, *previous) if s is not None) if current else ()


def _each(value: SecretStr | list[SecretStr] | None, check: Callable[[SecretStr], SecretStr]) -> object:
    if value is None:
        return None
    return [check(v) for v in value] if isinstance(value, list) else check(value)


def listen_address(value: str) -> tuple[str, int]:
    """``"9100"`` as ``("0.0.0.0", 9100)`` (every interface), ``"127.0.0.1:9100"`` as it says."""
    host, _, port = value.strip().rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be on, off, a port, or host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def describe_errors(error: ValidationError) -> str:
    """One line naming each bad setting's variable and what to do, never echoing a value."""
    lines = []
    for err in error.errors():
        field = ".".join(str(part) for part in err["loc"] if not isinstance(part, int))
        env = f"RELAY_{field.upper()}" if field else "RELAY_*"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{env}: {message}")
    return "invalid settings: " + "; ".join(lines)


def load_settings() -> Settings:
    """Read settings from the environment, or exit with a clear message (no traceback)."""
    try:
        return Settings()
    except ValidationError as error:
        raise SystemExit(f"sphere-relay: {describe_errors(error)}") from None
