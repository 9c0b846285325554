"""The senders the relay takes events from, and what the workers need of them: which models parse a
stored event, and which stored types a normalized `Vote` or `Review` stands for.

A stored event's type names its sender: Sphere's types are bare (``VOTE_ADD``), every other sender's
carry its name (``topgg:vote.create``), so a handler, a dead letter or a replay never mistakes one
sender's ``test`` for another's. Adding a sender: its module here, and its class in `SENDERS`.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from relay.core import events
from relay.core.events import Event, InvalidBody, Payload, Review, Vote, load_object
from relay.core.keys import SPHERE
from relay.core.senders import standard, topgg

SENDERS = (topgg.TopggSender, standard.StandardSender)
"""Every sender beside Sphere (whose types are stored bare and whose entries carry no ``source``)."""

PAYLOADS: Mapping[str, tuple[Mapping[str, type[Payload]], type[Payload]]] = {
    SPHERE: (events.MODELS, Event),
    **{sender.NAME: (sender.MODELS, sender.BASE) for sender in SENDERS},
}
"""Per sender: its models by event type, and the base model for a type the relay does not know."""

SEPARATOR = ":"


def qualified(source: str, event_type: str) -> str:
    """The stored type of `source`'s `event_type`: bare for Sphere, ``<source>:<type>`` for the others."""
    return event_type if source == SPHERE else f"{source}{SEPARATOR}{event_type}"


def split(stored_type: str) -> tuple[str, str]:
    """``(source, the sender's own type)`` of a stored type."""
    source, sep, name = stored_type.partition(SEPARATOR)
    return (source, name) if sep and source in PAYLOADS and source != SPHERE else (SPHERE, stored_type)


def parse_stored(stored_type: str, body: bytes) -> Payload:
    """Parse a stored event's body with its sender's model for `stored_type` (`events.InvalidBody`,
    `events.InvalidEvent` as `events.parse`)."""
    source, name = split(stored_type)
    if source == SPHERE:
        return events.parse(body)
    models, base = PAYLOADS[source]
    data = load_object(body)
    found = data.get(base.TYPE_FIELD)
    if found != name:
        raise InvalidBody(f"the body's {base.TYPE_FIELD!r} is not {name!r}")
    return events.validate_with(models.get(name, base), data)


def known_types() -> set[str]:
    """Every stored type some model parses."""
    return {qualified(source, name) for source, (models, _) in PAYLOADS.items() for name in models}


def types_of(target: type[Payload] | type[Vote] | type[Review]) -> tuple[str, ...]:
    """The stored types a model class stands for: `Vote` and `Review` every type that normalizes to
    them, a sender's model the types its type field allows. Raises `TypeError` for a base model."""
    if target is Vote or target is Review:
        return tuple(
            qualified(source, name)
            for source, (models, _) in PAYLOADS.items()
            for name, model in models.items()
            if model.NORMALIZED is target
        )
    if not issubclass(target, Payload):
        raise TypeError(f"expected a Payload model, Vote or Review, got {target!r}")
    field = target.model_fields.get(target.TYPE_FIELD)
    if field is not None and typing.get_origin(field.annotation) is typing.Literal:
        return tuple(qualified(target.SOURCE, str(name)) for name in typing.get_args(field.annotation))
    raise TypeError(f"{target.__name__} accepts any event type; register it as '*'")
