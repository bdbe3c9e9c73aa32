"""Time arguments of the control API (`now`, `-6h`, `now-15m`, ISO 8601 or unix seconds), and
the ISO 8601 it answers with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from annotations.control.errors import BadRequestError
from storage import timeparse as times
from storage.records import NS_PER_S

_MAX_TEXT = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str, now_ns: int) -> int:
    """Epoch nanoseconds for `text` (the query API's syntax); raises BadRequestError."""
    if len(text) > _MAX_TEXT:
        raise BadRequestError("time too long")
    try:
        return times.parse_time(text, now_ns)
    except ValueError as error:
        raise BadRequestError(str(error)) from None


def format_time(ts_ns: int) -> str:
    """ISO 8601 in UTC to the millisecond (`2024-05-01T12:00:00.250Z`), as parse_time reads it."""
    seconds, rest_ns = divmod(ts_ns, NS_PER_S)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest_ns // 1_000_000:03d}Z"


def parse_range(start: str | None, end: str | None, now_ns: int, default: str) -> tuple[int, int]:
    """[start, end] in ns from query arguments, `default` for a missing start, now for end."""
    start_ns = parse_time(start or default, now_ns)
    end_ns = parse_time(end or "now", now_ns)
    if start_ns > end_ns:
        raise BadRequestError("from is after to")
    return start_ns, end_ns
