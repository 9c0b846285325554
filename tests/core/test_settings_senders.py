"""The senders' settings: each on only with its secret, rotation like RELAY_SECRET's, and start-up
refusing a weak or placeholder secret of any sender in one line that names the setting, never the value."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from relay.core.settings import load_settings
from tests.security.edge_process import run_to_exit
from tests.support.environment import isolate
from tests.support.senders import (
    STANDARD_PREVIOUS,
    STANDARD_SECRET,
    TOPGG_AUTHORIZATION,
    TOPGG_PREVIOUS,
    TOPGG_SECRET,
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def test_every_sender_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_SECRET", "a-real-secret-8f2e")
    settings = load_settings()

    assert (
        settings.topgg_secrets()
        == settings.topgg_authorizations()
        == settings.standard_webhooks_secrets()
        == ()
    )


def test_each_sender_rotates_with_its_previous_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TOPGG_SECRET", TOPGG_SECRET)
    monkeypatch.setenv("RELAY_PREVIOUS_TOPGG_SECRETS", f" {TOPGG_PREVIOUS} ,")
    monkeypatch.setenv("RELAY_TOPGG_AUTHORIZATION", TOPGG_AUTHORIZATION)
    monkeypatch.setenv("RELAY_PREVIOUS_TOPGG_AUTHORIZATIONS", "older-v0-authorization-77")
    monkeypatch.setenv("RELAY_STANDARD_WEBHOOKS_SECRET", STANDARD_SECRET)
    monkeypatch.setenv("RELAY_PREVIOUS_STANDARD_WEBHOOKS_SECRETS", STANDARD_PREVIOUS)
    settings = load_settings()

    assert settings.secret is None and settings.signing_keys() == ()
    assert settings.topgg_secrets() == (TOPGG_SECRET, TOPGG_PREVIOUS)
    assert settings.topgg_authorizations() == (TOPGG_AUTHORIZATION, "older-v0-authorization-77")
    assert settings.standard_webhooks_secrets() == (STANDARD_SECRET, STANDARD_PREVIOUS)


def test_no_sender_at_all_is_refused_naming_relay_secret() -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings()

    message = str(exited.value.code)
    assert "\n" not in message
    assert "RELAY_SECRET" in message and "RELAY_TOPGG_SECRET" in message


SHORT_STANDARD = "whsec_" + base64.b64encode(b"x" * 16).decode()


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("RELAY_TOPGG_SECRET", "", "empty"),
        ("RELAY_TOPGG_SECRET", "<your top.gg secret>", "placeholder"),
        ("RELAY_TOPGG_SECRET", "whs_changeme_0123456789", "placeholder"),
        ("RELAY_TOPGG_SECRET", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "must start with whs_"),
        ("RELAY_TOPGG_SECRET", "whs_short", "shorter than 16"),
        ("RELAY_PREVIOUS_TOPGG_SECRETS", "whs_short", "shorter than 16"),
        ("RELAY_TOPGG_AUTHORIZATION", "changeme", "placeholder"),
        ("RELAY_TOPGG_AUTHORIZATION", "hunter2", "shorter than 16"),
        ("RELAY_PREVIOUS_TOPGG_AUTHORIZATIONS", "your-secret-here-123456", "placeholder"),
        ("RELAY_STANDARD_WEBHOOKS_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "sample key"),
        ("RELAY_STANDARD_WEBHOOKS_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx", "must start with whsec_"),
        ("RELAY_STANDARD_WEBHOOKS_SECRET", "whsec_not*base64*at*all*0123456789", "base64"),
        ("RELAY_STANDARD_WEBHOOKS_SECRET", SHORT_STANDARD, "24 to 64 bytes"),
        ("RELAY_PREVIOUS_STANDARD_WEBHOOKS_SECRETS", SHORT_STANDARD, "24 to 64 bytes"),
    ],
)
def test_a_weak_sender_secret_exits_in_one_line_that_names_it_and_hides_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, why: str
) -> None:
    monkeypatch.setenv("RELAY_SECRET", "a-real-secret-8f2e")
    if variable.startswith("RELAY_PREVIOUS_"):  # the current one must be set for its previous ones to count
        current = variable.replace("PREVIOUS_", "").removesuffix("S")
        good = {
            "RELAY_TOPGG_SECRET": TOPGG_SECRET,
            "RELAY_TOPGG_AUTHORIZATION": TOPGG_AUTHORIZATION,
            "RELAY_STANDARD_WEBHOOKS_SECRET": STANDARD_SECRET,
        }
        monkeypatch.setenv(current, good[current])
    monkeypatch.setenv(variable, value)

    with pytest.raises(SystemExit) as exited:
        load_settings()

    message = str(exited.value.code)
    assert message.startswith("sphere-relay: invalid settings") and "\n" not in message
    assert f"{variable}:" in message
    assert why in message
    if value:
        assert value not in message


def test_the_edge_process_refuses_to_start_on_a_weak_sender_secret(tmp_path: Path) -> None:
    done = run_to_exit(
        tmp_path,
        {
            "RELAY_TOPGG_SECRET": "whs_changeme_please_0123",
            "RELAY_STANDARD_WEBHOOKS_SECRET": SHORT_STANDARD,
        },
    )

    assert done.returncode != 0
    [line] = [line for line in done.stderr.splitlines() if "sphere-relay:" in line]
    assert "RELAY_TOPGG_SECRET: is a placeholder" in line
    assert "RELAY_STANDARD_WEBHOOKS_SECRET: must hold 24 to 64 bytes" in line
    assert "changeme_please" not in done.stdout + done.stderr
