"""A real `redis-server` as a managed Redis runs it: TLS only, a private CA made here, an ACL user.

The CA and the server's certificate are made with ``openssl`` in the test's directory; the server
listens on a TLS port only (no plain port), and its ``default`` user is off, so only
``USER``/``PASSWORD`` get in.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from tests.support.redis_server import free_port, redis_server_binary, wait_until_answers

USER = "relay-app"
PASSWORD = "Zr8vQ2kLp5wN7xT3mB9c"


def make_ca(directory: Path, name: str = "ca") -> Path:
    """A self-signed CA (``<name>.crt``, ``<name>.key``) in `directory`; returns the certificate."""
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN=Test {name}", "-keyout", str(key), "-out", str(crt))  # fmt: skip
    return crt


def make_server_cert(directory: Path, ca: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and localhost) signed by `ca`: (certificate, key)."""
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca.with_suffix(".key")),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return crt, key


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class TlsRedisServer:
    """``redis-server`` on a free TLS port of 127.0.0.1, with an ACL user and the default user off."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = make_ca(directory)
        self.cert, self.key = make_server_cert(directory, self.ca)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, *, password: str = PASSWORD, ca: Path | None = None, db: int = 0) -> str:
        return f"rediss://{USER}:{password}@127.0.0.1:{self.port}/{db}?ssl_ca_certs={ca or self.ca}"

    def start(self) -> TlsRedisServer:
        args = [
            redis_server_binary(),
            "--port", "0",
            "--tls-port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
            "--user", "default", "off",
            "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all",
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        client = redis.Redis.from_url(self.url(), socket_connect_timeout=0.5)
        wait_until_answers(client, f"TLS redis-server on port {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
