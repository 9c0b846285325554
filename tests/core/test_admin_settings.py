"""RELAY_ADMIN_ADDRESS and RELAY_ADMIN_TOKEN: the admin page's settings, refused with one clear line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from relay.core.settings import Settings, describe_errors

SECRET = "k7Qm2vX9pL4rT8wZ3nB6yH1c"
OLD_SECRET = "p3Lw8Rt6Yh2Nq9Vb5Xc1Mz7K"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, secret=SECRET, **values)  # type: ignore[arg-type]


def refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    return describe_errors(caught.value)


def test_defaults_listen_on_this_host_with_no_token() -> None:
    assert settings().admin_address == "127.0.0.1:3267"
    assert settings().admin_token is None


def test_a_token_of_16_characters_or_more_is_kept() -> None:
    token = "Zt4Hq8Lm2Xv6Bn9P"
    assert settings(admin_token=f"  {token} ").admin_token.get_secret_value() == token  # type: ignore[union-attr]


@pytest.mark.parametrize("token", ["", "Qx7vB", "Pq9Zt4Hq8Lm2Xv6"])
def test_a_short_token_is_refused_naming_the_variable(token: str) -> None:
    message = refusal(admin_token=token)
    assert "RELAY_ADMIN_TOKEN: must be at least 16 characters" in message
    assert not token or token not in message


@pytest.mark.parametrize("token", [SECRET, OLD_SECRET])
def test_a_token_equal_to_a_signing_secret_is_refused_without_echoing_it(token: str) -> None:
    message = refusal(admin_token=token, previous_secrets=[OLD_SECRET])
    assert "RELAY_ADMIN_TOKEN: must differ from RELAY_SECRET" in message
    assert token not in message


@pytest.mark.parametrize("address", ["nowhere", "127.0.0.1:0", "host:99999"])
def test_a_bad_address_is_refused(address: str) -> None:
    assert "RELAY_ADMIN_ADDRESS" in refusal(admin_address=address)


def test_an_address_may_be_a_bare_port() -> None:
    assert settings(admin_address="8080").admin_address == "0.0.0.0:8080"
