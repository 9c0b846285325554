"""Sphere's webhook signature: hex HMAC-SHA256 of the raw request body under the listing's secret.

Pure functions, no I/O. Unlike the samples in Sphere's guide, this hashes the exact bytes received
(never re-serialized JSON) and compares digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

HEADER = "X-Sphere-Signature"
_PREFIX = "sha256="
_HEX_LENGTH = 64


def sign(body: bytes, secret: bytes) -> str:
    """The lowercase hex signature Sphere puts in ``X-Sphere-Signature`` for `body`."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _normalize(header: str) -> str | None:
    # Only the length and ASCII are checked (compare_digest refuses other text): a value of the
    # right length that is not hex simply matches no digest. Cheaper than checking each digit.
    value = header.strip().lower()
    if value.startswith(_PREFIX):
        value = value[len(_PREFIX) :]
    if len(value) != _HEX_LENGTH or not value.isascii():
        return None
    return value


class Verifier:
    """`verify` for a fixed list of secrets, keyed once.

    Setting up an HMAC key costs more than hashing a webhook body (OpenSSL 3 fetches the digest and
    hashes both padded keys each time, about twice the cost of copying a keyed state: bench/RESULTS.md,
    "Figures behind the code"), so the edge keys each secret at start-up and copies it per request.
    """

    def __init__(self, secrets: Iterable[bytes]) -> None:
        self._keyed = tuple(hmac.new(secret, digestmod=hashlib.sha256) for secret in secrets)

    def __call__(self, body: bytes, header: str | None) -> bool:
        """True when `header` is a valid signature of `body` under any of the secrets."""
        if header is None:
            return False
        claimed = _normalize(header)
        if claimed is None:
            return False
        matched = False
        for keyed in self._keyed:
            digest = keyed.copy()
            digest.update(body)
            matched |= hmac.compare_digest(digest.hexdigest(), claimed)
        return matched


def verify(body: bytes, header: str | None, secrets: Iterable[bytes]) -> bool:
    """True when `header` is a valid signature of `body` under any of `secrets`.

    The header may be upper- or lowercase hex and may carry a ``sha256=`` prefix. Every secret is
    checked, so the time taken does not tell which one matched. To check many bodies against the
    same secrets, build a `Verifier` once.
    """
    return Verifier(secrets)(body, header)
