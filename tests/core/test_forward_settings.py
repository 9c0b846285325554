"""The forwarding settings: URLs checked, a strong ``whsec_`` secret required with them, one line
naming the setting when not."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from relay.core.settings import load_settings
from tests.support.environment import isolate

STRONG = "whsec_" + base64.b64encode(bytes(range(40, 72))).decode()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("RELAY_SECRET", "a-real-secret-8f2e")


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        load_settings()
    message = str(exited.value.code)
    assert message.startswith("sphere-relay: invalid settings") and "\n" not in message
    return message


def test_forwarding_is_off_by_default() -> None:
    settings = load_settings()
    assert (settings.forward_url, settings.forward_secret) == ([], None)
    assert (settings.forward_concurrency, settings.forward_timeout) == (8, 10.0)


def test_urls_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_FORWARD_URL", " https://bot.example.com/relay ,http://10.0.0.5:8000/x,")
    monkeypatch.setenv("RELAY_FORWARD_SECRET", STRONG)
    settings = load_settings()
    assert settings.forward_url == ["https://bot.example.com/relay", "http://10.0.0.5:8000/x"]
    assert settings.forward_secret is not None and settings.forward_secret.get_secret_value() == STRONG


def test_a_url_without_a_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, RELAY_FORWARD_URL="https://bot.example.com/relay")
    assert "RELAY_FORWARD_SECRET: is required when RELAY_FORWARD_URL is set" in message
    assert "openssl rand -base64 32" in message


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("", "is required"),
        ("c2VjcmV0LXdpdGhvdXQtYS1wcmVmaXgtMDEyMzQ1Njc4OQ==", "must start with whsec_"),
        ("whsec_not base64 at all!!", "is not base64"),
        ("whsec_" + base64.b64encode(b"sixteen-bytes-12").decode(), "is weak"),
        ("whsec_" + base64.b64encode(b"\0" * 32).decode(), "is weak"),
    ],
)
def test_a_weak_secret_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, secret: str, why: str
) -> None:
    message = refusal(
        monkeypatch, RELAY_FORWARD_URL="https://bot.example.com/relay", RELAY_FORWARD_SECRET=secret
    )
    assert "RELAY_FORWARD_SECRET" in message and why in message
    if secret:
        assert secret not in message


@pytest.mark.parametrize(
    ("urls", "why"),
    [
        ("ftp://bot.example.com/relay", "URL 1 is not an http:// or https:// URL"),
        ("https://ok.example/relay,/relay?token=s3cr3t", "URL 2 is not"),
        ("https://bot.example.com/relay#frag", "fragment"),
        ("https://bot.example.com/relay,https://bot.example.com/relay", "the same URL twice"),
    ],
)
def test_a_bad_url_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, urls: str, why: str
) -> None:
    message = refusal(monkeypatch, RELAY_FORWARD_URL=urls, RELAY_FORWARD_SECRET=STRONG)
    assert "RELAY_FORWARD_URL" in message and why in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize(
    ("variable", "value"), [("RELAY_FORWARD_CONCURRENCY", "0"), ("RELAY_FORWARD_TIMEOUT", "0")]
)
def test_limits_must_be_positive(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    assert variable in refusal(monkeypatch, **{variable: value})
