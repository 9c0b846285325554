"""Hypothesis strategies for hostile webhook requests: bodies, headers and signatures.

Signatures are computed here with hmac, independently of `relay.edge.signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from typing import Any

from hypothesis import strategies as st

from tests.conftest import PREVIOUS_SECRET, SECRET

SIGNATURE = b"x-sphere-signature"
SNOWFLAKE = st.from_regex(r"\A[0-9]{1,20}\Z")


def hex_signature(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- JSON values ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),  # far past 64 bits
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a valid value, sometimes anything at all (a wrong type, a huge number, a list...)."""
    return st.one_of(valid, valid, json_values)


reviews = st.fixed_dictionaries(
    {
        "id": _maybe(SNOWFLAKE),
        "published_timestamp": _maybe(st.integers(min_value=0, max_value=2**63)),
        "stars": _maybe(st.integers(min_value=1, max_value=5)),
        "content": _maybe(
            st.fixed_dictionaries({"title": _maybe(st.text()), "description": _maybe(st.text())})
        ),
    }
)
events = st.fixed_dictionaries(
    {
        "event": _maybe(st.sampled_from(["VOTE_ADD", "REVIEW_ADD", "GUILD_BOOST", "", "vote_add"])),
        "guild_id": _maybe(SNOWFLAKE),
        "user_id": _maybe(SNOWFLAKE),
    },
    optional={"review": _maybe(reviews), "extra": json_values},
)
"""Sphere-shaped objects whose fields are sometimes of the wrong type, missing or unknown."""


# -- raw bodies ----------------------------------------------------------------------------------


@st.composite
def encoded(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> bytes:
    """A JSON document as bytes, in any of the spellings a sender might use."""
    value = draw(values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 0, 2])))
    return text.encode("utf-8", "surrogatepass")  # lone surrogates from st.text() stay in as bytes


@st.composite
def duplicate_keys(draw: st.DrawFn) -> bytes:
    """An object repeating a key (often ``event``) with different values: which one wins?"""
    key = draw(st.sampled_from(["event", "guild_id", "user_id", "review"]) | st.text(max_size=5))
    first, second = draw(json_values), draw(json_values)
    base = {"event": "VOTE_ADD", "guild_id": "1", "user_id": "2"}
    members = [f"{json.dumps(k)}:{json.dumps(v)}" for k, v in base.items()]
    members += [f"{json.dumps(key)}:{json.dumps(first)}", f"{json.dumps(key)}:{json.dumps(second)}"]
    order = draw(st.permutations(members))
    return ("{" + ",".join(order) + "}").encode()


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=5000))
    kind = draw(st.sampled_from(["array", "object", "in-event"]))
    if kind == "array":
        return b"[" * depth + b"]" * depth
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "object":
        return inner
    return b'{"event":"GUILD_BOOST","payload":' + inner + b"}"


huge_numbers = st.sampled_from(
    [
        b"1" * 5000,
        b"-" + b"9" * 4000,
        b"1e999999",
        b"-1e-999999",
        b"1.0e308",
        b"2e308",
        b"0." + b"0" * 4000 + b"1",
    ]
).map(lambda number: b'{"event":"GUILD_BOOST","n":' + number + b"}")


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    """A valid event with bytes no UTF-8 decoder accepts spliced into one of its strings."""
    bad = draw(
        st.sampled_from(
            [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xe2\x82"]
        )
    )
    title = draw(st.text(max_size=10)).encode()
    at = draw(st.integers(min_value=0, max_value=len(title)))
    return (
        b'{"event":"REVIEW_ADD","guild_id":"1","user_id":"2","review":{"id":"3","published_timestamp":1,'
        b'"stars":5,"content":{"title":"' + title[:at] + bad + title[at:] + b'","description":""}}}'
    )


odd_framing = st.one_of(
    st.sampled_from(
        [b"", b" ", b"\x00", b"\xef\xbb\xbf{}", b"{}\x00", b"{} {}", b'{"event":"X"', b"NaN", b"null"]
    ),
    encoded(events).map(lambda body: b"\xef\xbb\xbf" + body),  # a byte-order mark
    encoded(events).map(lambda body: body + b"\n\x00"),
)

bodies = st.one_of(
    st.binary(max_size=200),
    encoded(json_values),
    encoded(events),
    encoded(events),
    duplicate_keys(),
    deep_nesting(),
    huge_numbers,
    invalid_utf8(),
    odd_framing,
)
"""Anything a hostile or broken sender might post."""


@st.composite
def split(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """`body` cut into the ``http.request`` messages a server might deliver (empty pieces too)."""
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=4)))
    points = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(points)]


# -- headers -------------------------------------------------------------------------------------

_TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789-_!#$%&'*+.^`|~"
header_names = st.one_of(
    st.text(alphabet=_TOKEN, min_size=1, max_size=20).map(str.encode),
    st.sampled_from(
        [
            b"content-type",
            b"transfer-encoding",
            b"x-forwarded-for",
            b"expect",
            b"host",
            b"x-sphere-signature-2",
        ]
    ),
)
header_values = st.binary(max_size=60).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b""))
odd_headers = st.lists(st.tuples(header_names, header_values), max_size=6)
"""Headers an ASGI server may pass on: any token name, any bytes but CR and LF as the value."""

content_lengths = st.one_of(
    st.just(None),
    st.sampled_from([b"0", b"-1", b"abc", b" 12", b"1e3", b"99999999999999999999999", b"\xd9\xa1"]),
    st.integers(min_value=0, max_value=10**6).map(lambda n: str(n).encode()),
)


@st.composite
def valid_spelling(draw: st.DrawFn, body: bytes) -> bytes:
    """A correct signature of `body`, under the current or a previous secret, in any accepted spelling."""
    digest = hex_signature(body, draw(st.sampled_from([SECRET, PREVIOUS_SECRET])))
    digest = draw(st.sampled_from([digest, digest.upper()]))
    prefix = draw(st.sampled_from(["", "sha256=", "SHA256="]))
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return f"{pad}{prefix}{digest}{pad}".encode()


@st.composite
def forged_signatures(draw: st.DrawFn, body: bytes) -> list[tuple[bytes, bytes]]:
    """The signature headers of a request that must not get in: none, wrong, or ambiguous."""
    good = draw(valid_spelling(body))
    digest = hex_signature(body)
    wrong = draw(
        st.one_of(
            st.binary(max_size=80).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b"")),
            st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(str.encode),
            st.just(hex_signature(body, "not-the-secret").encode()),
            st.just(hex_signature(body + b" ").encode()),
            st.just(digest[:-1].encode()),
            st.just(digest.encode() + b"0"),
            st.just(digest[:32].encode()),
            st.just(f"sha1={digest}".encode()),
            st.just(hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest().encode()),
            st.just(hashlib.sha256(body).hexdigest().encode()),  # a plain hash, no key
        )
    )
    choice = draw(st.sampled_from(["none", "wrong", "good-twice", "good-and-wrong", "wrong-and-good"]))
    return {
        "none": [],
        "wrong": [(SIGNATURE, wrong)],
        "good-twice": [(SIGNATURE, good), (SIGNATURE, good)],
        "good-and-wrong": [(SIGNATURE, good), (SIGNATURE, wrong)],
        "wrong-and-good": [(SIGNATURE, wrong), (SIGNATURE, good)],
    }[choice]


# -- whole requests ------------------------------------------------------------------------------
# Everything is drawn up front, outside the test's coroutine: a draw that runs out of data raises
# hypothesis' StopTest, which must not cross anyio's runner.


@st.composite
def forged_requests(draw: st.DrawFn) -> tuple[bytes, bytes | None, list[tuple[bytes, bytes]], list[bytes]]:
    """``(body, declared length, headers, chunks)`` of a request without exactly one valid signature."""
    body = draw(bodies)
    length = draw(content_lengths)
    headers = [*draw(odd_headers), *draw(forged_signatures(body))]
    if length is not None:
        headers.append((b"content-length", length))
    return body, length, draw(st.permutations(headers)), draw(split(body))


@st.composite
def signed_requests(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, bytes]], list[bytes]]:
    """``(body, headers, chunks)``: one valid signature, other headers anything, no lying length."""
    body = draw(bodies)
    headers = [(n, v) for n, v in draw(odd_headers) if n not in (SIGNATURE, b"content-length")]
    headers.append((SIGNATURE, draw(valid_spelling(body))))
    if draw(st.booleans()):
        headers.append((b"content-length", str(len(body)).encode()))
    return body, draw(st.permutations(headers)), draw(split(body))
