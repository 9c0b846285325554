"""@on: names, model classes, the wildcard, options and their validation."""

from __future__ import annotations

from typing import Any

import pytest

from relay.core.events import Event, ReviewAdd, VoteAdd
from worker import Registry
from worker.registry import DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, event_names


async def handler(ctx: Any, event: Any) -> None:
    pass


def test_defaults_follow_the_contract() -> None:
    registry = Registry()
    registry.on("VOTE_ADD")(handler)
    [registered] = registry
    assert (registered.name, registered.event_types) == ("handler", ("VOTE_ADD",))
    assert (registered.max_attempts, registered.backoff, registered.timeout) == (12, 10.0, 30.0)
    assert (registered.max_backoff, registered.future) == (1800.0, False)
    assert (DEFAULT_MAX_ATTEMPTS, DEFAULT_BACKOFF, DEFAULT_TIMEOUT) == (12, 10.0, 30.0)
    assert registered.is_async


def test_options_are_kept_and_the_function_is_returned_unchanged() -> None:
    registry = Registry()
    returned = registry.on("REVIEW_ADD", max_attempts=8, backoff=2.0, max_backoff=60, timeout=30)(handler)
    assert returned is handler
    registered = registry.get("handler")
    assert registered is not None
    assert (registered.max_attempts, registered.backoff, registered.max_backoff, registered.timeout) == (
        8,
        2.0,
        60.0,
        30.0,
    )


def test_model_classes_stand_for_their_event_names() -> None:
    assert event_names(VoteAdd) == ("VOTE_ADD",)
    assert event_names(ReviewAdd) == ("REVIEW_ADD",)
    with pytest.raises(TypeError, match="'\\*'"):
        event_names(Event)
    with pytest.raises(TypeError):
        event_names(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        event_names("")


def test_lookup_by_type_includes_the_wildcard_in_registration_order() -> None:
    registry = Registry()

    @registry.on("*")
    async def audit(ctx: Any, event: Any) -> None:
        pass

    @registry.on(VoteAdd, "REVIEW_ADD")
    async def both(ctx: Any, event: Any) -> None:
        pass

    @registry.on("VOTE_ADD", "*")  # listed twice over: still one job per event
    async def votes(ctx: Any, event: Any) -> None:
        pass

    assert [h.name for h in registry.for_type("VOTE_ADD")] == ["audit", "both", "votes"]
    assert [h.name for h in registry.for_type("REVIEW_ADD")] == ["audit", "both", "votes"]
    assert [h.name for h in registry.for_type("GUILD_BOOST")] == ["audit", "votes"]
    assert Registry().for_type("VOTE_ADD") == []


def test_plain_functions_are_accepted_and_marked_sync() -> None:
    registry = Registry()

    @registry.on("VOTE_ADD")
    def blocking(ctx: Any, event: Any) -> None:
        pass

    assert not registry.for_type("VOTE_ADD")[0].is_async


def test_two_handlers_may_not_share_a_name() -> None:
    registry = Registry()
    registry.on("VOTE_ADD")(handler)
    registry.on("VOTE_ADD")(handler)  # the same module imported twice is harmless
    assert len(registry) == 1

    async def handler_(ctx: Any, event: Any) -> None:
        pass

    handler_.__name__ = "handler"
    with pytest.raises(ValueError, match="already registered"):
        registry.on("REVIEW_ADD")(handler_)


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"backoff": -1},
        {"backoff": float("nan")},
        {"max_backoff": -1},
        {"max_backoff": float("inf")},
        {"timeout": 0},
        {"timeout": float("inf")},
    ],
)
def test_bad_options_are_refused_at_decoration(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Registry().on("VOTE_ADD", **options)


def test_on_needs_an_event_type() -> None:
    with pytest.raises(TypeError):
        Registry().on()
