"""``relay send vote|review``: does Sphere reach me? Sign and post an event exactly as Sphere does.

The body is compact JSON (``JSON.stringify``'s form: no spaces, non-ASCII as is), signed with the
hex HMAC-SHA256 of its bytes in ``X-Sphere-Signature`` (`relay.edge.signature.sign`). Every event of a
burst is distinct, so none is taken for a redelivery: each vote gets a fresh user id unless
``--user`` is given, each review a fresh review id unless ``--review-id`` is given.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import click
import httpx

from relay.cli.common import App, ConfigError, Failed, Unreachable, pass_app
from relay.core.logs import redact_url
from relay.core.settings import weak_secret_reason
from relay.edge.signature import HEADER, sign

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


def post_all(url: str, bodies: Iterable[bytes], signer: Callable[[bytes], str]) -> list[Answer]:
    """POST `bodies` one after another on one connection, printing each answer."""
    answers = []
    try:
        with httpx.Client(timeout=10.0) as client:
            for body in bodies:
                headers = {"Content-Type": "application/json", HEADER: signer(body)}
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


def _signer(app: App, secret: str | None, bad_signature: bool) -> Callable[[bytes], str]:
    if bad_signature:
        return forged_signature
    from_flag = secret is not None
    if secret is None and app.settings.secret is not None:
        secret = app.settings.secret.get_secret_value()
    if not secret or not secret.strip():
        raise ConfigError(
            "no secret to sign with: set RELAY_SECRET (in the environment or .env) to your listing's "
            "secret key from Sphere, or pass --secret"
        )
    weak = weak_secret_reason(secret)
    if weak is not None:
        where = "--secret" if from_flag else "RELAY_SECRET"
        raise ConfigError(f"{where} {weak}; the relay refuses to start with it, so nothing was sent")
    key = secret.strip().encode()
    return lambda body: sign(body, key)


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
    """


@send.command()
@common_options
@pass_app
def vote(
    app: App, url: str, secret: str | None, guild: str, user: str | None, count: int, bad_signature: bool
) -> None:
    """Send VOTE_ADD events.

    Votes carry no id: two identical vote bodies within RELAY_DEDUPE_SECONDS are one delivery to
    the relay, so the second is answered "200 duplicate". Without --user each vote has a new user
    id, so a burst is stored whole; with --user, only the first of a burst is.

    \b
    Examples:
        relay send vote
        relay send vote --user 258317078560243712 --guild 338202622731485185
        relay send vote --count 100
    """
    signer = _signer(app, secret, bad_signature)
    ids = snowflakes(int(time.time() * 1000))
    bodies = (vote_body(guild, user or next(ids)) for _ in range(count))
    finish(post_all(url, bodies, signer), bad_signature)


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
    signer = _signer(app, secret, bad_signature)
    now_ms = int(time.time() * 1000)
    ids = snowflakes(now_ms)
    bodies = (
        review_body(guild, user or next(ids), review_id or next(ids), stars, title, text, now_ms)
        for _ in range(count)
    )
    finish(post_all(url, bodies, signer), bad_signature)
