"""``relay``: the operator's command. Send test events, watch the pipeline, inspect and replay dead
letters, see refused requests.

    relay send vote|review       sign and post an event as Sphere does      (relay/cli/send.py)
    relay stats                  stream, groups, queue, dead letters, refusals (relay/cli/stats.py)
    relay dlq ls|show|replay|purge                                           (relay/cli/dlq.py)
    relay replay --since T       run a time range of events again           (relay/cli/replay.py)
    relay rejected               the latest refused requests                (relay/cli/rejected.py)
    relay admin                  the operator's web page                    (relay/cli/admin.py)

It reads the services' ``RELAY_*`` settings (environment or ``.env``): ``RELAY_REDIS_URL``, and
``RELAY_TASKS`` for the replays, which load the handlers as a worker does. Only ``relay send``
needs ``RELAY_SECRET``.

Exit codes:

    0  done
    1  the operation failed or was refused: an event not accepted, a forgery accepted, a dead
       letter not found or not replayable, a purge not confirmed
    2  usage: a bad flag or argument, a bad setting, a tasks module that does not import
    3  Redis or the edge cannot be reached

Errors are one line on stderr, ``relay: <what went wrong>``, never a traceback, and never a secret
or the password of a Redis URL.
"""

from __future__ import annotations

import sys

import click

from relay.cli.admin import admin
from relay.cli.common import EXIT_FAILED, App, pass_app
from relay.cli.dlq import dlq
from relay.cli.rejected import rejected
from relay.cli.replay import replay
from relay.cli.send import send
from relay.cli.stats import stats


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sphere-relay", prog_name="relay")
@click.option(
    "--redis-url",
    metavar="URL",
    default=None,
    help="The Redis to use, instead of RELAY_REDIS_URL (default redis://localhost:6379/0).",
)
@pass_app
def cli(app: App, redis_url: str | None) -> None:
    """Operate Sphere Relay: send test events, watch it, replay what failed.

    Settings come from RELAY_* variables or .env, as for the services (RELAY_REDIS_URL,
    RELAY_TASKS; RELAY_SECRET for send only). Exit codes: 0 done, 1 failed or refused, 2 usage,
    3 Redis or the edge unreachable.

    \b
    Examples:
        relay send vote
        relay stats --watch
        relay dlq ls
        relay dlq replay --all --handler reward_voter
        relay replay --since 2h
        relay rejected
        relay --redis-url redis://127.0.0.1:6391/0 stats
    """
    app.redis_url = redis_url


for command in (send, stats, dlq, replay, rejected, admin):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """The ``relay`` console script."""
    try:
        cli.main(args=argv, prog_name="relay", obj=App())
    except Exception as exc:  # a bug: still one line, and no secret (settings never reach messages)
        click.echo(f"relay: unexpected error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_FAILED)
