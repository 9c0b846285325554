"""The one Redis factory against real servers: TLS with a private CA, an ACL user, a db; and why a
connection failed, told apart on real failures (wrong password, wrong CA, nothing listening)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.core.redis import async_client, check, describe, failure, sync_client
from relay.core.settings import Settings, load_settings
from tests.support.redis_server import free_port, redis_server_binary, wait_until_answers
from tests.support.tls_redis import PASSWORD, TlsRedisServer, make_ca

SECRET = "k7Qm2vX9pL4rT8wZ3nB6yH1c"


def settings(url: str, **values: object) -> Settings:
    return Settings(_env_file=None, secret=SECRET, redis_url=url, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path_factory.mktemp("tls-redis")).start()
    yield server
    server.kill()


def test_the_blocking_client_speaks_tls_with_the_urls_ca_as_the_acl_user_on_its_db(
    tls_redis: TlsRedisServer,
) -> None:
    client = sync_client(settings(tls_redis.url(db=3)))
    try:
        client.set("relay:test:tls", b"yes")
        assert client.acl_whoami() == "relay-app"
        assert client.connection_pool.connection_kwargs["db"] == 3
    finally:
        client.close()
    other_db = sync_client(settings(tls_redis.url(db=0)))
    try:
        assert other_db.get("relay:test:tls") is None  # db 3 was used, not the default
    finally:
        other_db.close()


@pytest.mark.anyio
async def test_the_asyncio_client_speaks_tls_as_the_acl_user(tls_redis: TlsRedisServer) -> None:
    client = async_client(settings(tls_redis.url()))
    try:
        assert await client.acl_whoami() == "relay-app"
    finally:
        await client.aclose()


def test_check_is_none_when_redis_answers(tls_redis: TlsRedisServer) -> None:
    assert check(settings(tls_redis.url())) is None


def test_a_wrong_password_is_an_auth_failure_that_waiting_cannot_cure(tls_redis: TlsRedisServer) -> None:
    why = check(settings(tls_redis.url(password="not-the-password-at-all")))

    assert why is not None
    assert (why.kind, why.fatal) == ("auth", True)
    assert "not-the-password-at-all" not in why.reason


def test_a_certificate_from_another_ca_is_a_tls_failure_that_waiting_cannot_cure(
    tls_redis: TlsRedisServer, tmp_path: Path
) -> None:
    stranger = make_ca(tmp_path, "stranger")

    why = check(settings(tls_redis.url(ca=stranger)))

    assert why is not None
    assert (why.kind, why.fatal) == ("tls", True)
    assert PASSWORD not in why.reason


def test_nothing_listening_is_refused_and_worth_waiting_for() -> None:
    why = check(settings(f"redis://127.0.0.1:{free_port()}/0"), timeout=1.0)

    assert why is not None
    assert (why.kind, why.fatal) == ("refused", False)


def test_failure_names_a_timeout() -> None:
    assert failure(RedisTimeoutError("Timeout connecting to server")).kind == "timeout"


def test_describe_never_shows_a_password(tls_redis: TlsRedisServer) -> None:
    assert PASSWORD not in describe(settings(tls_redis.url()))
    sentinel = settings(
        f"redis://app:{PASSWORD}@ignored:1/2",
        redis_sentinels="10.0.0.5:26379,10.0.0.6:26379",
        redis_sentinel_password="Qw8eR2tY6uI0oP4aS1dF",
    )
    text = describe(sentinel)
    assert text == "mymaster via sentinels 10.0.0.5:26379,10.0.0.6:26379 (redis://, db 2)"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("redis_sentinels", "10.0.0.5"),  # no port
        ("redis_sentinels", ":26379"),  # empty host
        ("redis_sentinels", "10.0.0.5:notaport"),
        ("redis_sentinels", "10.0.0.5:70000"),
        ("min_replicas", "-1"),
        ("replica_timeout", "0"),
        ("redis_sentinel_master", ""),
        ("redis_url", "http://app:hunter2-secret@localhost/0"),
        ("redis_url", "redis://localhost:6379/0?socket_timeout=soon"),
    ],
)
def test_a_malformed_redis_setting_is_refused_naming_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"RELAY_{name.upper()}", value)
    monkeypatch.setenv("RELAY_SECRET", SECRET)

    with pytest.raises(SystemExit) as exc:
        load_settings()

    message = str(exc.value)
    assert f"RELAY_{name.upper()}" in message
    assert "hunter2-secret" not in message


def test_sentinels_cannot_go_with_a_unix_socket() -> None:
    with pytest.raises(ValidationError, match="unix://"):
        settings("unix:///run/redis.sock", redis_sentinels="10.0.0.5:26379")


def test_sentinels_parse_as_host_port_pairs() -> None:
    parsed = settings("redis://x/0", redis_sentinels=" 10.0.0.5:26379, [::1]:26380 ,")
    assert parsed.redis_sentinels == [("10.0.0.5", 26379), ("::1", 26380)]


def test_a_unix_socket_url_reaches_redis_with_its_db(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    args = [
        redis_server_binary(),
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"unix://{socket_path}?db=2"
        wait_until_answers(sync_client(settings(url)), "redis-server on a unix socket")
        client = sync_client(settings(url))
        try:
            client.set("relay:test:unix", b"yes")
            assert client.connection_pool.connection_kwargs["db"] == 2
            assert client.connection_pool.connection_kwargs["path"] == str(socket_path)
        finally:
            client.close()
    finally:
        server.kill()
        server.wait()
