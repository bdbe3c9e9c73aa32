"""The StatsD line parser: round trips, etsy's name rules, DogStatsD tags, hostile bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.errors import ParseError
from collector.statsd import COUNTER, GAUGE, SET, TIMER, parse_line, sanitize_name
from storage.records import Series
from tests.strategies import BAD_STATSD_LINES, statsd_hostile_lines, statsd_lines


@given(statsd_lines())
def test_formatted_line_parses_back_to_its_fields(case: tuple[bytes, dict[str, object]]) -> None:
    line, expected = case
    (metric,) = parse_line(line)
    assert metric.series == expected["series"]
    assert metric.kind == expected["kind"]
    assert metric.rate == expected["rate"]
    assert metric.delta == expected["delta"]
    if metric.kind == SET:
        assert metric.member == expected["value"]
    else:
        assert metric.value == expected["value"]


@given(st.one_of(st.binary(max_size=80), statsd_hostile_lines))
def test_arbitrary_bytes_parse_or_raise_parse_error_only(line: bytes) -> None:
    reason = None
    try:
        metrics = parse_line(line)
    except ParseError as e:
        reason, metrics = e.reason, []
    if reason is None:
        assert metrics
        assert all(m.series.metric for m in metrics)
    else:
        assert reason in BAD_STATSD_LINES


@pytest.mark.parametrize(
    ("reason", "line"), [(r, line) for r, lines in BAD_STATSD_LINES.items() for line in lines]
)
def test_known_bad_line_is_refused_with_its_reason(reason: str, line: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_line(line)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"a b\t\tc", "a_b_c"),
        (b"a/b", "a-b"),
        (b"a$b%c(d)", "abcd"),
        (b"caf\xc3\xa9.hits", "caf.hits"),
        (b"ok.Name_1-2", "ok.Name_1-2"),
    ],
)
def test_names_are_sanitised_like_etsy(raw: bytes, name: str) -> None:
    assert sanitize_name(raw) == name
    assert parse_line(raw + b":1|c")[0].series.metric == name


def test_types_map_to_kinds_and_histograms_are_timers() -> None:
    kinds = [parse_line(b"a:1|" + t)[0].kind for t in (b"c", b"g", b"ms", b"h", b"d", b"s")]
    assert kinds == [COUNTER, GAUGE, TIMER, TIMER, TIMER, SET]


def test_dogstatsd_tags_bare_tag_has_empty_value_and_colon_stays_in_value() -> None:
    (metric,) = parse_line(b"req:2|c|@0.5|#env:prod,canary,url:http://x")
    assert metric.series == Series.of("req", {"env": "prod", "canary": "", "url": "http://x"})
    assert metric.value == 2.0
    assert metric.rate == 0.5


def test_several_groups_after_one_name_share_name_and_tags() -> None:
    metrics = parse_line(b"a:1|c:2|ms|@0.1:+3|g|#k:v")
    assert [(m.kind, m.value, m.rate, m.delta) for m in metrics] == [
        (COUNTER, 1.0, 1.0, False),
        (TIMER, 2.0, 0.1, False),
        (GAUGE, 3.0, 1.0, True),
    ]
    assert {m.series for m in metrics} == {Series.of("a", {"k": "v"})}


def test_gauge_sign_marks_a_delta_and_negative_counters_are_values() -> None:
    assert parse_line(b"g:-5|g")[0].delta
    assert parse_line(b"g:+5|g")[0].delta
    assert not parse_line(b"g:5|g")[0].delta
    assert parse_line(b"c:-5|c")[0].value == -5.0


def test_trailing_carriage_return_is_ignored() -> None:
    assert parse_line(b"a:1|c\r")[0].series == Series("a")


def test_parse_error_truncates_huge_lines() -> None:
    with pytest.raises(ParseError) as info:
        parse_line(b"x" * 100_000)
    assert len(info.value.line) < 300
