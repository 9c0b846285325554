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
_HEX_DIGITS = frozenset("0123456789abcdef")


def sign(body: bytes, secret: bytes) -> str:
    """The lowercase hex signature Sphere puts in ``X-Sphere-Signature`` for `body`."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _normalize(header: str) -> str | None:
    value = header.strip().lower()
    if value.startswith(_PREFIX):
        value = value[len(_PREFIX) :]
    if len(value) != _HEX_LENGTH or not _HEX_DIGITS.issuperset(value):
        return None
    return value


def verify(body: bytes, header: str | None, secrets: Iterable[bytes]) -> bool:
    """True when `header` is a valid signature of `body` under any of `secrets`.

    The header may be upper- or lowercase hex and may carry a ``sha256=`` prefix. Every secret is
    checked, so the time taken does not tell which one matched.
    """
    if header is None:
        return False
    claimed = _normalize(header)
    if claimed is None:
        return False
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(body, secret), claimed)
    return matched
