"""``relay send vote|review``: does Sphere reach me? Sign and post an event exactly as Sphere does
(or, with ``--source``, as top.gg or a Standard Webhooks sender does).

The body is compact JSON (``JSON.stringify``'s form: no spaces, non-ASCII as is), signed with the
hex HMAC-SHA256 of its bytes in ``X-Sphere-Signature`` (`relay.edge.signature.sign`); top.gg's and
Standard Webhooks' bodies and signatures are theirs (`relay.core.senders`). Every event of a burst is
distinct, so none is taken for a redelivery: each vote gets a fresh user id unless ``--user`` is
given (and a fresh vote or message id), each review a fresh review id unless ``--review-id`` is given.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
import httpx
from pydantic import SecretStr
from standardwebhooks import Webhook

from relay.cli.common import App, ConfigError, Failed, Unreachable, pass_app
from relay.core.logs import redact_url
from relay.core.senders import topgg
from relay.core.settings import weak_secret_reason
from relay.edge.signature import HEADER, sign

SOURCES = ("sphere", "topgg", "standard")
Signer = Callable[[bytes], dict[str, str]]
"""The headers that sign a body."""

DEFAULT_URL = "http://localhost:3266/webhook"
EXAMPLE_GUILD = "338202622731485185"
"""The guild id of Sphere's own examples."""
DISCORD_EPOCH_MS = 1420070400000


def compact(data: dict[str, Any]) -> bytes:
    """JSON as Sphere sends it."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def snowflakes(now_ms: int) -> Iterator[str]:
    """Distinct Discord-style ids for this moment (a random start, so two runs do not collide)."""
    counter = secrets.randbits(22)
    while True:
        yield str(((now_ms - DISCORD_EPOCH_MS) << 22) | (counter & 0x3FFFFF))
        counter += 1


def vote_body(guild: str, user: str) -> bytes:
    return compact({"event": "VOTE_ADD", "guild_id": guild, "user_id": user})


def review_body(
    guild: str, user: str, review_id: str, stars: int, title: str, text: str, published_ms: int
) -> bytes:
    return compact(
        {
            "event": "REVIEW_ADD",
            "guild_id": guild,
            "user_id": user,
            "review": {
                "id": review_id,
                "published_timestamp": published_ms,
                "stars": stars,
                "content": {"title": title, "description": text},
            },
        }
    )


def forged_signature(body: bytes) -> str:
    """A well-formed signature under a random key: what a forger can at best send."""
    return sign(body, secrets.token_bytes(32))


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}+00:00"


def topgg_vote_body(guild: str, user: str, vote_id: str, now_ms: int, test: bool) -> bytes:
    """top.gg v1's ``vote.create`` (``webhook.test`` with `test`) for a server, as its docs show it."""
    project = {"id": guild, "type": "server", "platform": "discord", "platform_id": guild}
    person = {"id": user, "platform_id": user, "name": "relay send", "avatar_url": None}
    if test:
        return compact({"type": "webhook.test", "data": {"user": person, "project": project}})
    data = {
        "id": vote_id,
        "weight": 1,
        "created_at": iso(now_ms),
        "expires_at": iso(now_ms + 12 * 3600 * 1000),
        "project": project,
        "query": {},
        "user": person,
    }
    return compact({"type": "vote.create", "data": data})


def topgg_legacy_body(guild: str, user: str, test: bool) -> bytes:
    """top.gg v0's server vote."""
    return compact(
        {"guild": guild, "user": user, "type": "test" if test else "upvote", "isWeekend": False, "query": ""}
    )


def standard_vote_body(guild: str, user: str, now_ms: int, test: bool) -> bytes:
    data = {"user_id": user, "target_id": guild, "target": "guild", "weight": 1, "test": test}
    return compact({"type": "vote.create", "timestamp": iso(now_ms), "data": data})


def standard_review_body(guild: str, user: str, review_id: str, stars: int, title: str, text: str) -> bytes:
    data = {
        "user_id": user,
        "target_id": guild,
        "stars": stars,
        "title": title,
        "text": text,
        "id": review_id,
    }
    return compact({"type": "review.create", "data": data})


def route(url: str, source: str) -> str:
    """A sender's route from the relay's ``/webhook`` URL (any other URL is taken as it is)."""
    if source != "sphere" and url.rstrip("/").endswith("/webhook"):
        return f"{url.rstrip('/')}/{source}"
    return url


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    outcome: str
    """``queued``, ``duplicate``, or the error code (``invalid_signature``, ...)."""
    entry_id: str

    @classmethod
    def from_response(cls, response: httpx.Response) -> Answer:
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            return cls(response.status_code, " ".join(response.text.split())[:100], "")
        outcome = document.get("status") or document.get("error") or ""
        return cls(response.status_code, str(outcome), str(document.get("id") or ""))

    def line(self) -> str:
        return " ".join(part for part in (str(self.status), self.outcome, self.entry_id) if part)


def post_all(url: str, bodies: Iterable[bytes], signer: Signer) -> list[Answer]:
    """POST `bodies` one after another on one connection, printing each answer."""
    answers = []
    try:
        with httpx.Client(timeout=10.0) as client:
            for body in bodies:
                headers = {"Content-Type": "application/json", **signer(body)}
                answer = Answer.from_response(client.post(url, content=body, headers=headers))
                click.echo(answer.line())
                answers.append(answer)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ConfigError(f"--url {redact_url(url)} is not an http(s) URL: {exc}") from None
    except httpx.TimeoutException:
        raise Unreachable(f"no answer from the edge at {redact_url(url)} within 10s") from None
    except httpx.TransportError as exc:
        raise Unreachable(f"cannot reach the edge at {redact_url(url)}: {exc}") from None
    return answers


def finish(answers: list[Answer], bad_signature: bool) -> None:
    """Exit 0 if the deployment answered as it should, else say how it did not."""
    if len(answers) > 1:
        counts: dict[str, int] = {}
        for answer in answers:
            counts[answer.outcome] = counts.get(answer.outcome, 0) + 1
        click.echo(f"sent {len(answers)}: " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items()))
    if bad_signature:
        if any(200 <= a.status < 300 for a in answers):
            raise Failed(
                "the edge ACCEPTED a forged signature: anyone can send you events; check RELAY_SECRET"
            )
        if any(a.status != 401 for a in answers):
            raise Failed("the forgery was not refused with 401; is --url the relay's /webhook?")
        click.echo("forgery refused, as it should be")
        return
    if any(not 200 <= a.status < 300 for a in answers):
        raise Failed("not every event was accepted (see above; relay rejected says why)")


def _secret(app: App, source: str, flag: str | None) -> tuple[str, str]:
    """``(variable, secret)`` to sign as `source` with: `flag`, else the sender's setting. top.gg signs
    v1 with a ``whs_`` secret (``RELAY_TOPGG_SECRET`` first), v0 with an Authorization value."""
    settings = app.settings
    if source == "topgg":
        if flag is not None:
            return (
                "RELAY_TOPGG_SECRET" if flag.strip().startswith("whs_") else "RELAY_TOPGG_AUTHORIZATION"
            ), flag
        for variable, value in (
            ("RELAY_TOPGG_SECRET", settings.topgg_secret),
            ("RELAY_TOPGG_AUTHORIZATION", settings.topgg_authorization),
        ):
            if value is not None:
                return variable, value.get_secret_value()
        return "RELAY_TOPGG_SECRET", ""
    variable, setting = {
        "sphere": ("RELAY_SECRET", settings.secret),
        "standard": ("RELAY_STANDARD_WEBHOOKS_SECRET", settings.standard_webhooks_secret),
    }[source]
    if flag is not None:
        return variable, flag
    return variable, setting.get_secret_value() if isinstance(setting, SecretStr) else ""


_WHERE = {
    "sphere": "your listing's secret key from Sphere",
    "topgg": "the whs_... secret from your project's Webhooks page on top.gg (or set RELAY_TOPGG_AUTHORIZATION for v0)",
    "standard": "your sender's whsec_... secret",
}


def _signer(app: App, secret: str | None, bad_signature: bool, source: str = "sphere") -> tuple[Signer, str]:
    """How to sign as `source`, and the variable whose secret it uses (top.gg v1 or v0)."""
    variable, value = _secret(app, source, secret)
    if bad_signature:
        return _forger(variable), variable
    if not value.strip():
        raise ConfigError(
            f"no secret to sign with: set {variable} (in the environment or .env) to {_WHERE[source]}, "
            "or pass --secret"
        )
    weak = weak_secret_reason(value, variable)
    if weak is not None:
        where = "--secret" if secret is not None else variable
        raise ConfigError(f"{where} {weak}; the relay refuses to start with it, so nothing was sent")
    return _signing(variable, value.strip()), variable


def _signing(variable: str, key: str) -> Signer:
    if variable == "RELAY_TOPGG_SECRET":
        return lambda body: {topgg.SIGNATURE_HEADER: topgg.sign(key, int(time.time()), body)}
    if variable == "RELAY_TOPGG_AUTHORIZATION":
        return lambda body: {"Authorization": key}
    if variable == "RELAY_STANDARD_WEBHOOKS_SECRET":
        hook = Webhook(key)

        def standard(body: bytes) -> dict[str, str]:
            msg_id, now = f"msg_{secrets.token_hex(12)}", datetime.now(UTC)
            return {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": hook.sign(msg_id, now, body),
            }

        return standard
    encoded = key.encode()
    return lambda body: {HEADER: sign(body, encoded)}


def _forger(variable: str) -> Signer:
    """A well-formed signature under a random key, in the sender's own form."""
    if variable == "RELAY_SECRET":
        return lambda body: {HEADER: forged_signature(body)}
    random_key = {
        "RELAY_TOPGG_SECRET": f"whs_{secrets.token_hex(16)}",
        "RELAY_TOPGG_AUTHORIZATION": secrets.token_hex(16),
        "RELAY_STANDARD_WEBHOOKS_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    }[variable]
    return _signing(variable, random_key)


def common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--url",
            envvar="RELAY_WEBHOOK_URL",
            default=DEFAULT_URL,
            show_default=True,
            help="The relay's webhook URL; default RELAY_WEBHOOK_URL if set (compose sets it in the containers).",
        ),
        click.option(
            "--secret",
            default=None,
            help="Sign with this key. Default: RELAY_SECRET, which is safer (a flag shows in `ps`).",
        ),
        click.option("--guild", default=EXAMPLE_GUILD, show_default=True, help="guild_id: your server's id."),
        click.option("--user", default=None, help="user_id. Default: a new id for each event."),
        click.option(
            "--count",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Events to send, one after another.",
        ),
        click.option(
            "--bad-signature",
            is_flag=True,
            help="Sign with a random key instead, and exit 0 only if the relay refuses it with 401.",
        ),
        click.option(
            "--source",
            type=click.Choice(SOURCES),
            default="sphere",
            show_default=True,
            help="Send and sign as this sender does; its route is --url's /webhook plus /topgg or /standard.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.group(short_help="Sign and post a test vote or review, as Sphere does.")
def send() -> None:
    """Sign and post a test event to the relay, exactly as Sphere does.

    Prints each answer: its status, the outcome and the stored entry id. Exits 0 when every
    event was accepted (202 queued, or 200 duplicate), 1 otherwise, 3 when the edge cannot be
    reached. With --bad-signature, exits 0 only if every forgery was refused with 401.

    \b
    Examples:
        relay send vote
        relay send review --stars 1 --title "Too quiet" --count 20
        relay send vote --url https://relay.example.com/webhook --bad-signature
        relay send vote --source topgg --test
    """


@send.command()
@common_options
@click.option("--test", is_flag=True, help="Send the sender's test delivery instead (top.gg: webhook.test).")
@pass_app
def vote(
    app: App,
    url: str,
    secret: str | None,
    guild: str,
    user: str | None,
    count: int,
    bad_signature: bool,
    source: str,
    test: bool,
) -> None:
    """Send VOTE_ADD events (top.gg's or a Standard Webhooks vote with --source).

    Votes carry no id: two identical vote bodies within RELAY_DEDUPE_SECONDS are one delivery to
    the relay, so the second is answered "200 duplicate". Without --user each vote has a new user
    id, so a burst is stored whole; with --user, only the first of a burst is.

    \b
    Examples:
        relay send vote
        relay send vote --user 258317078560243712 --guild 338202622731485185
        relay send vote --count 100
        relay send vote --source topgg --test
    """
    signer, variable = _signer(app, secret, bad_signature, source)
    now_ms = int(time.time() * 1000)
    ids = snowflakes(now_ms)
    if variable == "RELAY_TOPGG_SECRET":
        bodies = (topgg_vote_body(guild, user or next(ids), next(ids), now_ms, test) for _ in range(count))
    elif variable == "RELAY_TOPGG_AUTHORIZATION":
        bodies = (topgg_legacy_body(guild, user or next(ids), test) for _ in range(count))
    elif source == "standard":
        bodies = (standard_vote_body(guild, user or next(ids), now_ms, test) for _ in range(count))
    elif test:
        raise ConfigError("Sphere has no test delivery: --test needs --source topgg or --source standard")
    else:
        bodies = (vote_body(guild, user or next(ids)) for _ in range(count))
    finish(post_all(route(url, source), bodies, signer), bad_signature)


@send.command()
@common_options
@click.option("--stars", type=click.IntRange(1, 5), default=5, show_default=True)
@click.option("--title", default="Test review", show_default=True)
@click.option("--text", default="Sent by relay send.", show_default=True, help="The review's description.")
@click.option(
    "--review-id", default=None, help="Default: a new id for each review (the same id is deduplicated)."
)
@pass_app
def review(
    app: App,
    url: str,
    secret: str | None,
    guild: str,
    user: str | None,
    count: int,
    bad_signature: bool,
    source: str,
    stars: int,
    title: str,
    text: str,
    review_id: str | None,
) -> None:
    """Send REVIEW_ADD events.

    Each review gets a new review id, the relay's dedupe key for reviews, unless --review-id is
    given (then a burst stores only the first).

    \b
    Examples:
        relay send review
        relay send review --stars 2 --title "Laggy bot" --text "Fix it please" --count 3
    """
    if source == "topgg":
        raise ConfigError("top.gg sends no reviews: use --source sphere or --source standard")
    signer, _ = _signer(app, secret, bad_signature, source)
    now_ms = int(time.time() * 1000)
    ids = snowflakes(now_ms)
    if source == "standard":
        bodies = (
            standard_review_body(guild, user or next(ids), review_id or next(ids), stars, title, text)
            for _ in range(count)
        )
    else:
        bodies = (
            review_body(guild, user or next(ids), review_id or next(ids), stars, title, text, now_ms)
            for _ in range(count)
        )
    finish(post_all(route(url, source), bodies, signer), bad_signature)
