"""Times and durations as the `relay` command and the admin page read and print them. Pure functions.

- A duration: ``90s``, ``15m``, ``12h``, ``7d``, ``2w``, or several together (``1h30m``).
- A point in time (``--since``, ``--until``): a duration meaning that long ago (``2h``), ``now``, an
  ISO 8601 time (``2024-06-10T14:00``, UTC unless it carries an offset), or a stream entry id
  (``1718000000000-0``; ids are the milliseconds Redis stored the entry at).
- Times are printed in UTC, like the services' log lines.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_STREAM_ID = re.compile(r"\d+-\d+")


def parse_duration(text: str) -> float:
    """Seconds in ``"1h30m"``; ValueError unless the whole text is number-unit pairs (s m h d w)."""
    spec = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(spec)
    if not spec or "".join(number + unit for number, unit in parts) != spec:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 12h, 7d or 1h30m")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def parse_time(text: str, now_ms: int) -> str:
    """An XRANGE bound for a point in time: milliseconds (``"1718000000000"``), or an entry id as given.

    Milliseconds alone mean the first entry of that millisecond as a start and the last one as an
    end, which is what ``--since`` and ``--until`` (both inclusive) want.
    """
    spec = text.strip()
    if _STREAM_ID.fullmatch(spec):
        return spec
    if spec.lower() == "now":
        return str(now_ms)
    try:
        return str(max(0, now_ms - round(parse_duration(spec) * 1000)))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(spec)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give a duration ago (2h, 30m, 7d), an ISO time "
            "(2024-06-10T14:00, UTC unless an offset is given), 'now' or a stream entry id"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(max(0, round(moment.timestamp() * 1000)))


def bound_ms(bound: str) -> int:
    """The milliseconds of an XRANGE bound made by `parse_time`."""
    return int(bound.partition("-")[0])


def id_ms(entry_id: str) -> int:
    """When a stream entry was stored: the milliseconds part of its id."""
    return int(entry_id.partition("-")[0])


def iso(ms: int) -> str:
    """``2024-06-10T14:00:00.123Z``"""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def span(ms: float) -> str:
    """A short human duration: ``850ms``, ``2.1s``, ``3m05s``, ``2h03m``, ``3d04h``."""
    if ms < 1000:
        return f"{max(0, round(ms))}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def ago(ms: int, now_ms: int) -> str:
    """``3m05s ago``"""
    return f"{span(now_ms - ms)} ago"
