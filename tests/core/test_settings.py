"""Settings: typed, from RELAY_* variables, refusing a weak secret without echoing it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from relay.core.settings import SAMPLE_SECRETS, Settings, load_settings
from tests.support.environment import isolate

SAMPLE = "126f6954b62cd81a11bc0adf42e571ec129bb8883c3c34d82da1e42f84a27cab"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RELAY_* variable and no .env from the developer's machine leaks into these tests."""
    isolate(monkeypatch, tmp_path)


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_SECRET", "a-real-secret-8f2e")
    settings = load_settings()

    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.max_body_bytes == 65536
    assert settings.dedupe_seconds == 3600
    assert settings.previous_secrets == []
    assert settings.signing_keys() == (b"a-real-secret-8f2e",)


def test_retention_is_a_week_by_default_and_read_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_SECRET", "a-real-secret-8f2e")
    assert (load_settings().retention_seconds, load_settings().retention_ms) == (604_800, 604_800_000)

    monkeypatch.setenv("RELAY_RETENTION_SECONDS", "90")
    assert (load_settings().retention_seconds, load_settings().retention_ms) == (90, 90_000)


def test_previous_secrets_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_SECRET", "current-7c1d9e4a")
    monkeypatch.setenv("RELAY_PREVIOUS_SECRETS", " old-one-5b2f8a3c , older-two-0e6d1f7b,, ")

    assert load_settings().signing_keys() == (
        b"current-7c1d9e4a",
        b"old-one-5b2f8a3c",
        b"older-two-0e6d1f7b",
    )


def test_values_come_from_a_dot_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RELAY_SECRET=from-dotenv-3a9c71e2\nRELAY_MAX_BODY_BYTES=1024\n")

    settings = load_settings()

    assert settings.secret.get_secret_value() == "from-dotenv-3a9c71e2"
    assert settings.max_body_bytes == 1024


def test_the_secret_never_shows_in_repr() -> None:
    settings = Settings(secret=SecretStr("hunter2-secret-9d4b"), _env_file=None)  # type: ignore[call-arg]

    assert "hunter2-secret-9d4b" not in repr(settings)
    assert "hunter2-secret-9d4b" not in str(settings.model_dump())


@pytest.mark.parametrize("secret", ["", "   ", *sorted(SAMPLE_SECRETS)])
def test_an_empty_or_sample_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError):
        Settings(secret=SecretStr(secret), _env_file=None)  # type: ignore[call-arg]


def test_a_sample_key_is_refused_among_previous_secrets_too() -> None:
    with pytest.raises(ValidationError):
        Settings(  # type: ignore[call-arg]
            secret=SecretStr("real-secret-4e8a2c6f"), previous_secrets=[SecretStr(SAMPLE)], _env_file=None
        )


def test_a_missing_secret_exits_naming_the_variable() -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings()

    assert "RELAY_SECRET" in str(exited.value.code)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        (SAMPLE, "sample"),
        ("ВАШ_СЕКРЕТНЫЙ_КЛЮЧ", "sample"),
        ("<your listing's secret key>", "placeholder"),
        ("changeme", "placeholder"),
        ("CHANGE_ME-0123456789", "placeholder"),
        ("your-webhook-secret-here", "placeholder"),
        ("YourSphereSecretKey2026", "placeholder"),
        ("ci-only-secret", "shorter than 16"),
        ("x", "shorter than 16"),
    ],
)
def test_a_weak_secret_exits_with_a_clear_message_that_hides_it(
    monkeypatch: pytest.MonkeyPatch, value: str, why: str
) -> None:
    monkeypatch.setenv("RELAY_SECRET", value)

    with pytest.raises(SystemExit) as exited:
        load_settings()

    message = str(exited.value.code)
    assert message.startswith("sphere-relay: invalid settings")
    assert "\n" not in message
    assert "RELAY_SECRET" in message
    assert why in message
    assert "Sphere" in message  # where the real key is
    if value:
        assert value not in message


@pytest.mark.parametrize(
    "value",
    [
        "126f6954b62cd81a11bc0adf42e571ec129bb8883c3c34d82da1e42f84a27caa",  # hex, as Sphere's keys are
        "0123456789abcdef",  # exactly 16 characters
        "test-secret-5d1c0a7e",
    ],
)
def test_a_real_looking_secret_is_accepted(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RELAY_SECRET", value)

    assert load_settings().signing_keys() == (value.encode(),)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RELAY_MAX_BODY_BYTES", "-5"), ("RELAY_RETENTION_SECONDS", "0"), ("RELAY_PREVIOUS_SECRETS", "old")],
)
def test_a_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv("RELAY_SECRET", "real-secret-4e8a2c6f")
    monkeypatch.setenv(variable, value)

    with pytest.raises(SystemExit) as exited:
        load_settings()

    assert variable in str(exited.value.code)
