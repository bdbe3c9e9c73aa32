"""Time arguments: relative, ISO 8601 and unix seconds round-trip; junk raises BadRequestError;
times answered in ISO 8601 parse back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.control.errors import BadRequestError
from annotations.control.timespec import format_time, parse_range, parse_time

NOW_NS = 1_700_000_000_123_456_789
S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW_NS),
        ("-6h", NOW_NS - 6 * 3600 * S),
        ("now-15m", NOW_NS - 15 * 60 * S),
        ("now - 1.5s", NOW_NS - 1_500_000_000),
        ("-250ms", NOW_NS - 250_000_000),
        ("-1w", NOW_NS - 7 * 86400 * S),
        ("1700000000", 1_700_000_000 * S),
        ("1700000000.5", 1_700_000_000_500_000_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000 * S),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000 * S),
        ("2023-11-14 22:13:20", 1_700_000_000 * S),
        ("2023-11-14", 1_699_920_000 * S),
    ],
)
def test_known_forms(text: str, expected: int) -> None:
    assert parse_time(text, NOW_NS) == expected


@given(st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2250, 1, 1)))
def test_iso_round_trips_to_the_microsecond(moment: datetime) -> None:
    moment = moment.replace(tzinfo=UTC)
    ns = parse_time(moment.isoformat(), NOW_NS)
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000) == moment
    assert ns % 1000 == 0


def test_times_are_answered_in_iso_8601_utc_to_the_millisecond() -> None:
    assert format_time(NOW_NS) == "2023-11-14T22:13:20.123Z"
    assert format_time(-1) == "1969-12-31T23:59:59.999Z"


@given(st.integers(min_value=-(2**63) + 10**6, max_value=2**63 - 1))  # flooring stays in range
def test_formatted_times_parse_back_to_the_millisecond(ns: int) -> None:
    assert parse_time(format_time(ns), NOW_NS) == ns - ns % 1_000_000


@given(st.integers(min_value=0, max_value=9 * 10**9))
def test_unix_seconds_round_trip(seconds: int) -> None:
    assert parse_time(str(seconds), NOW_NS) == seconds * S


@given(st.integers(min_value=0, max_value=5000), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_relative_times_are_before_now(amount: int, unit: str) -> None:
    ns = parse_time(f"-{amount}{unit}", NOW_NS)
    assert ns <= NOW_NS
    assert parse_time(f"now-{amount}{unit}", NOW_NS) == ns


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_bad_request(text: str) -> None:
    try:
        ns = parse_time(text, NOW_NS)
    except BadRequestError:
        return
    assert isinstance(ns, int)
    assert abs(ns) < 2**63


def test_range_defaults_and_order() -> None:
    assert parse_range(None, None, NOW_NS, "-1h") == (NOW_NS - 3600 * S, NOW_NS)
    with pytest.raises(BadRequestError, match="after"):
        parse_range("now", "-1h", NOW_NS, "-1h")
    for text in ("1e300", "nan", "-inf", "1e10", "-15"):
        with pytest.raises(BadRequestError, match="is not a time"):
            parse_time(text, NOW_NS)
    for text in ("9999-01-01", "-99999999999w", "9999999999999999999"):
        with pytest.raises(BadRequestError, match="out of range"):
            parse_time(text, NOW_NS)
