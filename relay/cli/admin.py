"""``relay admin``: serve the operator's web page (relay/admin) on ``RELAY_ADMIN_ADDRESS``."""

from __future__ import annotations

import click
import uvicorn
from pydantic import ValidationError

from relay.cli.common import App, ConfigError, pass_app
from relay.core.settings import Settings, describe_errors, listen_address


def admin_settings(redis_url: str | None = None) -> Settings:
    """The services' settings (`redis_url`: ``relay --redis-url``), with the admin token required;
    a bad one is a one-line usage error."""
    try:
        settings = Settings() if redis_url is None else Settings(redis_url=redis_url)
    except ValidationError as error:
        message = describe_errors(error).replace("\n", " ")
        if redis_url is not None:  # the flag's value, not the variable's, was refused
            message = message.replace("RELAY_REDIS_URL", "--redis-url")
        raise ConfigError(message) from None
    if settings.admin_token is None:
        raise ConfigError(
            "RELAY_ADMIN_TOKEN is required: set it to a token of 16+ characters of its own "
            "(e.g. openssl rand -hex 24); the page asks for it at sign-in"
        )
    return settings


@click.command(short_help="Serve the operator's web page (RELAY_ADMIN_ADDRESS).")
@pass_app
def admin(app: App) -> None:
    """Serve the operator's web page: live state, where an event is, dead letters with replay,
    refused requests. Listens on RELAY_ADMIN_ADDRESS (default 127.0.0.1:3267); sign in with
    RELAY_ADMIN_TOKEN, or send it as "Authorization: Bearer <token>" for the JSON answers.

    It reads the services' settings (RELAY_SECRET, RELAY_REDIS_URL, RELAY_TASKS for replays).

    \b
    Example:
        RELAY_ADMIN_TOKEN=$(openssl rand -hex 24) relay admin
    """
    # Imported here: relay.admin builds on relay.cli's modules, and only this command needs the page.
    from relay.admin.app import create_admin_app

    settings = admin_settings(app.redis_url)
    registry = app.handlers()
    host, port = listen_address(settings.admin_address)
    click.echo(f"relay admin: serving on http://{host}:{port}/ (sign in with RELAY_ADMIN_TOKEN)", err=True)
    config = uvicorn.Config(
        create_admin_app(settings, registry),
        host=host,
        port=port,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="warning",
    )
    uvicorn.Server(config).run()
