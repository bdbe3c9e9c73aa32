"""Time arguments of the control API: `now`, `-6h`, `now-15m`, ISO 8601 or unix seconds."""

from __future__ import annotations

from annotations.control.errors import BadRequestError
from storage import timeparse as times

_MAX_TEXT = 64


def parse_time(text: str, now_ns: int) -> int:
    """Epoch nanoseconds for `text` (the query API's syntax); raises BadRequestError."""
    if len(text) > _MAX_TEXT:
        raise BadRequestError("time too long")
    try:
        return times.parse_time(text, now_ns)
    except ValueError as error:
        raise BadRequestError(str(error)) from None


def parse_range(start: str | None, end: str | None, now_ns: int, default: str) -> tuple[int, int]:
    """[start, end] in ns from query arguments, `default` for a missing start, now for end."""
    start_ns = parse_time(start or default, now_ns)
    end_ns = parse_time(end or "now", now_ns)
    if start_ns > end_ns:
        raise BadRequestError("from is after to")
    return start_ns, end_ns
