"""docs/forward.md: the receivers it shows are the tested examples, line for line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "forward.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE, flags=re.DOTALL)


@pytest.mark.parametrize(
    ("language", "example", "shown"),
    [("python", "examples/forward_receiver.py", 0), ("js", "examples/forward_receiver.js", 0)],
)
def test_a_receiver_shown_is_the_examples_code(language: str, example: str, shown: int) -> None:
    source = {line.strip() for line in (ROOT / example).read_text().splitlines()}
    missing = [line for line in blocks(language)[shown].splitlines() if line.strip() not in source]
    assert missing == [], f"docs/forward.md shows lines {example} lacks"


def test_every_forward_setting_is_documented() -> None:
    from relay.core.settings import Settings

    for name in (n for n in Settings.model_fields if n.startswith("forward_")):
        assert f"`RELAY_{name.upper()}`" in GUIDE


def test_the_body_shown_is_what_the_relay_sends_for_its_payload() -> None:
    import json

    from relay.core.events import parse
    from worker.forward import message

    shown = json.loads(blocks("json")[0])
    raw = json.dumps(shown["payload"]).encode()
    sent = message.body(
        stored_type=shown["type"],
        entry_id=shown["event_id"],
        received_ms=shown["received_ms"],
        event=parse(raw),
        payload=raw,
    )
    assert json.loads(sent) == shown
