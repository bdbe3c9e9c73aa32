"""Times and durations as people type them in a query (`-6h`, `now`, ISO 8601, unix time)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal

from storage.records import NS_PER_S

_UNIT_NS = {
    "ms": NS_PER_S // 1000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
    "w": 7 * 86400 * NS_PER_S,
    "y": 365 * 86400 * NS_PER_S,
}
_NUMBER = r"\d{1,19}(?:\.\d{1,9})?"  # bounded, so no float overflows to inf
_DURATION = re.compile(rf"^({_NUMBER})(ms|s|m|h|d|w|y)?$")
_RELATIVE = re.compile(rf"^(?:now)?([+-])({_NUMBER})(ms|s|m|h|d|w)$")
_UNIX = re.compile(rf"^{_NUMBER}$")  # no sign: `-15` is a relative time missing its unit
MAX_ABS_NS = 2**63 - 1  # times are int64 nanoseconds: about the years 1678 to 2262

# Unix time given as a bare number: its size tells seconds from milli-, micro- or nanoseconds
# (1e11 seconds is the year 5138, 1e11 milliseconds is 1973).
_UNIX_SCALES = ((1e11, NS_PER_S), (1e14, 1_000_000), (1e17, 1_000), (math.inf, 1))

NICE_STEPS_NS = tuple(
    n * _UNIT_NS[unit]
    for n, unit in (
        (1, "s"),
        (2, "s"),
        (5, "s"),
        (10, "s"),
        (15, "s"),
        (30, "s"),
        (1, "m"),
        (2, "m"),
        (5, "m"),
        (10, "m"),
        (15, "m"),
        (30, "m"),
        (1, "h"),
        (2, "h"),
        (3, "h"),
        (6, "h"),
        (12, "h"),
        (1, "d"),
        (2, "d"),
        (7, "d"),
    )
)
"""Widths a step is rounded up to, so graph buckets fall on round times."""


def parse_duration_ns(text: str) -> int:
    """`500ms`, `10s`, `5m`, `6h`, `7d`, `2w`, `1y` or a bare number of seconds, in ns."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration (write e.g. 30s, 5m, 6h, 7d, 1y)")
    return round(float(match[1]) * _UNIT_NS[match[2] or "s"])


def parse_time(text: str, now_ns: int) -> int:
    """A point in time as epoch nanoseconds; ValueError says what is accepted.

    Accepts `now`, a time relative to now (`-15m`, `now-7d`, `now - 1.5s`, `+1h`), ISO 8601
    (`2024-05-01T12:00:00Z`; no zone means UTC) and unix time as a number (seconds, or milli-,
    micro- or nanoseconds, told apart by size; decimals are exact to the nanosecond).
    """
    ns = _parse_time(text, now_ns)
    if abs(ns) > MAX_ABS_NS:
        raise ValueError(f"{text[:64]!r} is out of range (years 1678 to 2262)")
    return ns


def _parse_time(text: str, now_ns: int) -> int:
    value = text.strip().replace(" ", "")
    if value == "now":
        return now_ns
    if match := _RELATIVE.match(value):
        offset = int(Decimal(match[2]) * _UNIT_NS[match[3]])
        return now_ns - offset if match[1] == "-" else now_ns + offset
    if _UNIX.match(value):
        number = Decimal(value)
        scale = next(ns for limit, ns in _UNIX_SCALES if abs(number) < limit)
        return int(number * scale)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text[:64]!r} is not a time (use now, -15m, now-7d, 2024-05-01T12:00:00Z or unix "
            "seconds)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def nice_step_ns(at_least_ns: int) -> int:
    """The smallest nice width >= `at_least_ns`; beyond a week, whole weeks."""
    for step in NICE_STEPS_NS:
        if step >= at_least_ns:
            return step
    week = _UNIT_NS["w"]
    return -(-at_least_ns // week) * week
