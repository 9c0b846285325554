"""What every `relay` subcommand shares: settings, the Redis session, errors and exit codes, pacing.

The command reads the same ``RELAY_*`` variables (and ``.env``) as the services, but through
`CliSettings`, which asks only for what the command uses: ``RELAY_SECRET`` is optional here, so
everything but ``relay send`` works on a machine that does not hold the secret.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import click
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.core.redis import async_client, describe, failure
from relay.core.redis import redis_now_ms as redis_now_ms  # the operator tools take it from here
from relay.core.settings import RedisAccess, Retention, Settings, describe_errors, forward_urls
from worker.checks import TasksError, check_registry, import_tasks
from worker.forward.handlers import listed_handlers, with_forwarding
from worker.registry import Registry, default_registry

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

PROGRESS_MIN = 10
"""Show a progress bar from this many jobs on; fewer are listed one per line instead."""

DEFAULT_RATE = 20.0
"""Replayed jobs per second by default: gentle on handlers that call rate-limited APIs (Discord)."""


class CliError(click.ClickException):
    """A failure printed as ``relay: <message>`` (a list: one such line each), exiting with `exit_code`."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str | list[str]) -> None:
        super().__init__("\n".join(message) if isinstance(message, list) else message)

    def show(self, file: Any = None) -> None:
        for line in self.format_message().splitlines() or [""]:
            click.echo(f"relay: {line}", err=True)


class Failed(CliError):
    """The operation failed or was refused (exit 1)."""


class ConfigError(CliError):
    """A bad setting or tasks module (exit 2, like a usage error)."""

    exit_code = EXIT_USAGE


class Unreachable(CliError):
    """Redis or the edge cannot be reached (exit 3)."""

    exit_code = EXIT_UNREACHABLE


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


class CliSettings(RedisAccess, Retention):
    """The ``RELAY_*`` settings the command uses; the same names and defaults as `relay.core.settings.Settings`."""

    model_config = SettingsConfigDict(env_prefix="RELAY_", env_file=".env", extra="ignore")

    secret: SecretStr | None = None
    """Only ``relay send`` needs it (and the other senders' secrets below), and ``--secret`` overrides it."""
    topgg_secret: SecretStr | None = None
    topgg_authorization: SecretStr | None = None
    standard_webhooks_secret: SecretStr | None = None
    tasks: str = _default("tasks")
    forward_url: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """The workers' forwarding destinations: each is a handler (`worker.forward`) replays may name."""

    @field_validator("forward_url", mode="before")
    @classmethod
    def _forward_urls(cls, value: object) -> object:
        return forward_urls(value)


def load_registry(tasks: str, forward_url: Sequence[str] = ()) -> Registry:
    """Import the tasks module as a worker does, and return the handlers it registered, with the
    forwarding handlers the workers add for `forward_url` (``RELAY_FORWARD_URL``)."""
    # arq's CLI puts the working directory on the path, so RELAY_TASKS=mytasks works for the workers
    # when run from the project; the same name must work here.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        import_tasks(tasks)
        registry = with_forwarding(default_registry, listed_handlers(forward_url))
    except TasksError as exc:
        raise ConfigError(exc.lines) from None
    if not len(registry):
        raise ConfigError(
            f"RELAY_TASKS={tasks} registers no handler: decorate functions with @on(...), or set RELAY_FORWARD_URL"
        )
    problems = check_registry(registry)
    if problems:  # the workers refuse to start with these: say so before replaying anything to them
        raise ConfigError(problems)
    return registry


@dataclass
class App:
    """The command's shared state (click's ``obj``). Tests may pass their own `registry`."""

    registry: Registry | None = None
    redis_url: str | None = field(default=None, repr=False)
    """``relay --redis-url``: overrides ``RELAY_REDIS_URL``."""
    _settings: CliSettings | None = field(default=None, repr=False)

    @property
    def settings(self) -> CliSettings:
        if self._settings is None:
            try:
                if self.redis_url is None:
                    self._settings = CliSettings()
                else:
                    self._settings = CliSettings(redis_url=self.redis_url)
            except ValidationError as error:
                message = describe_errors(error)
                if self.redis_url is not None:  # the flag's value, not the variable's, was refused
                    message = message.replace("RELAY_REDIS_URL", "--redis-url")
                raise ConfigError(message) from None
        return self._settings

    def handlers(self, require: str | None = None) -> Registry:
        """The handlers the workers run: the `registry` given, or those of ``RELAY_TASKS``.

        With `require`, a ``--handler`` value that names none of them is a usage error.
        """
        if self.registry is None:
            self.registry = load_registry(self.settings.tasks, self.settings.forward_url)
        if require is not None and self.registry.get(require) is None:
            known = ", ".join(h.name for h in self.registry)
            raise click.BadParameter(
                f"no handler {require!r} in RELAY_TASKS={self.settings.tasks} (it has: {known})",
                param_hint="--handler",
            )
        return self.registry

    @property
    def redis_name(self) -> str:
        """Where Redis is (``RELAY_REDIS_URL`` or the Sentinels) without a password, fit to print."""
        return describe(self.settings)

    def run(self, work: Callable[[Redis], Awaitable[T]]) -> T:
        """Run `work` with a Redis client on a fresh event loop; Redis failures become one-line errors."""
        return asyncio.run(self._with_redis(work))

    async def _with_redis(self, work: Callable[[Redis], Awaitable[T]]) -> T:
        client = async_client(self.settings, socket_connect_timeout=5, socket_timeout=30)
        try:
            return await work(client)
        except RedisError as exc:
            raise redis_failure(exc, self.redis_name) from None
        except OSError as exc:
            raise Unreachable(f"cannot reach Redis at {self.redis_name}: {exc}") from None
        finally:
            await client.aclose()


def redis_failure(exc: RedisError, where: str) -> CliError:
    """The one-line error for a Redis failure (none of redis-py's messages holds the password)."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, AuthenticationError):
        return Unreachable(f"Redis at {where} refused the credentials: {reason}")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return Unreachable(f"cannot reach Redis at {where}: {failure(exc).reason}")
    if isinstance(exc, ResponseError):
        return Failed(f"Redis at {where} answered an error: {reason}")
    return Failed(f"Redis at {where}: {type(exc).__name__}: {reason}")


pass_app = click.make_pass_decorator(App, ensure=True)


class Pacer:
    """Spaces work out to at most `rate` items per second (0 or less: no limit)."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    @property
    def batch(self) -> int:
        """Items to hand over at once: about ten batches a second, at most 100 items each."""
        return 100 if self.rate <= 0 else max(1, min(100, int(self.rate / 10)))

    async def wait(self, items: int) -> None:
        """Return when `items` more may go."""
        if self.rate <= 0:
            return
        now = self._clock()
        if self._next is not None and self._next > now:
            await self._sleep(self._next - now)
            now = self._next
        self._next = now + items / self.rate


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for `total` items, when there are many; yields its ``advance(n)``."""
    if total < PROGRESS_MIN:
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar.update


def rate_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--rate``: jobs per second, shared by both replays."""
    return click.option(
        "--rate",
        type=click.FloatRange(min=0),
        default=DEFAULT_RATE,
        show_default=True,
        help="Jobs enqueued per second at most (0: no limit), to spare your handlers and the APIs they call.",
    )(function)


def rerun_effects_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--rerun-effects``: forget what ``ctx["once"]`` recorded, so the replay does it again."""
    return click.option(
        "--rerun-effects",
        is_flag=True,
        help='Do again the side effects the handler wrapped in ctx["once"] (by default a replay skips those already done).',
    )(function)
