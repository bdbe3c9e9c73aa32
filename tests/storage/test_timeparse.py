"""Times and durations in queries: relative, absolute, unix in every unit, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.records import NS_PER_S
from storage.timeparse import NICE_STEPS_NS, nice_step_ns, parse_duration_ns, parse_time

NOW = 1_700_000_000 * NS_PER_S
H = 3600 * NS_PER_S


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-15m", NOW - 15 * 60 * NS_PER_S),
        ("-7d", NOW - 7 * 24 * H),
        ("now-6h", NOW - 6 * H),
        ("now - 1.5h", NOW - 3 * H // 2),
        ("+1h", NOW + H),
        ("-2w", NOW - 14 * 24 * H),
        ("-500ms", NOW - 500_000_000),
        ("1700000000", NOW),
        ("1700000000.5", NOW + NS_PER_S // 2),
        ("1700000000000", NOW),
        ("1700000000000000", NOW),
        ("1700000000000000000", NOW),
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T22:13:20", NOW),
        ("2023-11-14T23:13:20+01:00", NOW),
        ("2023-11-14T22:13:20.25Z", NOW + NS_PER_S // 4),
        ("2023-11-14", NOW - (22 * 3600 + 13 * 60 + 20) * NS_PER_S),
    ],
)
def test_parse_time_accepts(text, expected):
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "-15", "-15x", "now-", "12:00", "1e9", "--1h"])
def test_parse_time_refuses_with_an_example_of_what_works(text):
    with pytest.raises(ValueError, match=r"is not a time \(use now, -15m"):
        parse_time(text, NOW)


@given(st.integers(0, 10**9))
def test_unix_seconds_round_trip(seconds):
    assert parse_time(str(seconds), NOW) == seconds * NS_PER_S


near_times = st.from_regex(r"(now)? ?[+-]?\d{0,25}(\.\d{0,12})?(ms|s|m|h|d|w|x)?", fullmatch=True)


@pytest.mark.slow
@given(st.one_of(st.text(max_size=30), near_times))
def test_parse_time_returns_an_int_or_raises_value_error(text):
    try:
        result: int | str = parse_time(text, NOW)
    except ValueError as error:
        result = str(error)
    assert isinstance(result, int) or "is not a time" in result or "out of range" in result


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10s", 10 * NS_PER_S), ("5m", 300 * NS_PER_S), ("1h", H), ("90", 90 * NS_PER_S)],
)
def test_parse_duration(text, expected):
    assert parse_duration_ns(text) == expected


@pytest.mark.parametrize("text", ["", "auto", "-5m", "5 minutes", "m"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration_ns(text)


def test_nice_steps_round_up():
    assert nice_step_ns(1) == NS_PER_S
    assert nice_step_ns(int(2.4 * NS_PER_S)) == 5 * NS_PER_S
    assert nice_step_ns(403 * NS_PER_S) == 600 * NS_PER_S
    assert nice_step_ns(3 * 7 * 24 * H - 1) == 3 * 7 * 24 * H


@given(st.integers(1, 60 * 24 * H))
def test_nice_step_is_the_smallest_nice_width_at_least_asked(asked):
    step = nice_step_ns(asked)
    assert step >= asked
    assert all(s < asked for s in NICE_STEPS_NS if s < step)
