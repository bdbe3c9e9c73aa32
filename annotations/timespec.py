"""Time arguments of the control API: `now`, `-6h`, `now-15m`, ISO 8601 or unix seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from annotations.errors import BadRequestError

NS_PER_S = 1_000_000_000
# Times are stored as signed 64-bit nanoseconds: about the years 1678 to 2262.
MAX_ABS_NS = 2**63 - 1
_RELATIVE = re.compile(r"^(?:now)?\s*-\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$")
_UNIT_S = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
    "w": Decimal(7 * 86400),
}
_MAX_TEXT = 64


def parse_time(text: str, now_ns: int) -> int:
    """Epoch nanoseconds for `text`; naive ISO times are UTC. Raises BadRequestError."""
    ns = _parse(text.strip(), now_ns)
    if abs(ns) > MAX_ABS_NS:
        raise BadRequestError(f"time out of range: {text[:_MAX_TEXT]!r}")
    return ns


def _parse(text: str, now_ns: int) -> int:
    if len(text) > _MAX_TEXT:
        raise BadRequestError("time too long")
    if text == "now":
        return now_ns
    relative = _RELATIVE.match(text)
    if relative:
        return now_ns - int(Decimal(relative[1]) * _UNIT_S[relative[2]] * NS_PER_S)
    try:
        # Decimal, not float: unix seconds keep every digit down to the nanosecond.
        seconds = Decimal(text)
    except InvalidOperation:
        pass
    else:
        if not seconds.is_finite() or abs(seconds) * NS_PER_S > MAX_ABS_NS:
            raise BadRequestError(f"time out of range: {text!r}")
        return int(seconds * NS_PER_S)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(
            f"bad time {text!r}: use now, -6h, ISO 8601 or unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def parse_range(start: str | None, end: str | None, now_ns: int, default: str) -> tuple[int, int]:
    """[start, end] in ns from query arguments, `default` for a missing start, now for end."""
    start_ns = parse_time(start or default, now_ns)
    end_ns = parse_time(end or "now", now_ns)
    if start_ns > end_ns:
        raise BadRequestError("from is after to")
    return start_ns, end_ns
