"""Lua scripts run by hash, loaded on first use: one round trip, atomic, no per-call registration."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

ScriptArg = str | bytes | int | float


class Script:
    """A Lua script called with EVALSHA, falling back to EVAL when Redis does not know it yet."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, redis: Redis, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        # redis-py encodes bytes and numbers too, though its annotations say str.
        params = cast(list[str], [*keys, *args])
        try:
            return await cast(Any, redis.evalsha(self.sha, len(keys), *params))
        except NoScriptError:  # first call since Redis started, or after SCRIPT FLUSH
            return await cast(Any, redis.eval(self.text, len(keys), *params))
