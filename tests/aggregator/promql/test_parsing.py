"""The pieces that read input: names, API parameters and values, and PromQL, with hypothesis."""

from __future__ import annotations

import contextlib
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.promql.names import prometheus_label, prometheus_name, series_labels
from aggregator.promql.params import BadParam, format_value, parse_duration_ms, parse_time_ms
from aggregator.promql.syntax import (
    Aggregate,
    Binary,
    Call,
    PromQLError,
    RangeSelector,
    Unsupported,
    compile_regex,
    parse,
)
from storage.records import Series

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


@pytest.mark.parametrize(
    ("shipboard", "prometheus"),
    [
        ("http.requests.count", "http_requests_count"),
        ("http_requests_total", "http_requests_total"),
        ("node:cpu:rate5m", "node:cpu:rate5m"),
        ("api-latency.p99", "api_latency_p99"),
        ("5xx.count", "_5xx_count"),
        ("cpu.usage_user", "cpu_usage_user"),
        ("température", "temp_rature"),
    ],
)
def test_names_follow_prometheus_naming_rule(shipboard: str, prometheus: str) -> None:
    assert prometheus_name(shipboard) == prometheus


def test_series_labels_are_name_and_tags_without_empty_values() -> None:
    series = Series.of("http.requests", {"service.name": "web", "host": "a", "empty": ""})
    assert series_labels(series) == (
        ("__name__", "http_requests"),
        ("host", "a"),
        ("service_name", "web"),
    )
    assert prometheus_label("le") == "le"
    assert prometheus_label("a:b") == "a_b"  # a colon is for metric names only


@given(st.text(min_size=1, max_size=30))
def test_any_name_becomes_a_valid_one_and_valid_ones_stay(name: str) -> None:
    metric, label = prometheus_name(name), prometheus_label(name)
    assert METRIC_NAME.match(metric)
    assert LABEL_NAME.match(label)
    assert prometheus_name(metric) == metric
    assert prometheus_label(label) == label


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1700000000", 1_700_000_000_000),
        ("1700000000.123", 1_700_000_000_123),
        ("1700000000.1236", 1_700_000_000_124),
        ("-1.5", -1_500),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.5+00:00", 1_700_000_000_500),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
    ],
)
def test_times_are_unix_seconds_or_rfc3339(text: str, ms: int) -> None:
    assert parse_time_ms("time", text) == ms


@pytest.mark.parametrize("text", ["", "yesterday", "2023-11-14", "2023-11-14T22:13:20", "NaN"])
def test_bad_times_name_the_parameter(text: str) -> None:
    with pytest.raises(BadParam, match=r'^invalid parameter "start": cannot parse'):
        parse_time_ms("start", text)


@pytest.mark.parametrize(
    ("text", "ms"), [("15", 15_000), ("0.5", 500), ("1m30s", 90_000), ("2h", 7_200_000)]
)
def test_durations_are_seconds_or_prometheus_durations(text: str, ms: int) -> None:
    assert parse_duration_ms("step", text) == ms


@pytest.mark.parametrize("text", ["", "later", "5 m", "1e30"])
def test_bad_durations_name_the_parameter(text: str) -> None:
    with pytest.raises(BadParam, match=r'^invalid parameter "step": cannot parse'):
        parse_duration_ms("step", text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1000000000000000000000"),
        (1.5e-7, "0.00000015"),
        (-0.0, "-0"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_values_are_written_as_go_formats_them(value: float, text: str) -> None:
    assert format_value(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_written_values_read_back_exactly(value: float) -> None:
    text = format_value(value)
    assert "e" not in text
    assert float(text) == value


def test_queries_parse_into_nodes() -> None:
    node = parse('sum by (service) (rate(http_requests_total{code=~"5.."}[5m] offset 1m)) > bool 2')
    assert isinstance(node, Binary)
    assert node.return_bool
    assert isinstance(node.lhs, Aggregate)
    assert node.lhs.grouping == ("service",)
    call = node.lhs.expr
    assert isinstance(call, Call)
    [matrix] = call.args
    assert isinstance(matrix, RangeSelector)
    assert (matrix.range_ms, matrix.selector.offset_ms) == (300_000, 60_000)
    assert [(m.name, m.op, m.value) for m in matrix.selector.matchers] == [
        ("__name__", "=", "http_requests_total"),
        ("code", "=~", "5.."),
    ]
    assert matrix.selector.matchers[1].matches("503")
    assert not matrix.selector.matchers[1].matches("5030")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("x[5m:1m] @ 100", "the @ modifier"),
        ("a + fill(0) b", "fill()"),
        ("a + on(x) group_left fill_left(1) b", "fill()"),
        ("step()", "the function step()"),
        ("predict_linear(x[5m] @ 100, 60)", "the @ modifier inside predict_linear()"),
        ("timestamp(sum(x @ end()))", "the @ modifier inside timestamp()"),
        ("limitk(1, x)", "the aggregation limitk"),
        ("histogram_fraction(0, 1, x)", "the function histogram_fraction()"),
        ("mad_over_time(x[5m])", "the function mad_over_time()"),
        ("x atan2 y", "the operator atan2"),
    ],
)
def test_unsupported_promql_is_refused_by_name(query: str, named: str) -> None:
    with pytest.raises(Unsupported, match=re.escape(named)):
        parse(query)


TOKENS = [*"abx_{}()[]=~!\"',.+-*/^%<> 015m:@", "by", "sum", "rate", "offset", "bool", "on"]


@given(st.lists(st.sampled_from(TOKENS), max_size=25).map("".join))
def test_any_text_parses_or_is_refused_as_bad_data(query: str) -> None:
    with contextlib.suppress(PromQLError):
        parse(query)


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("(?i)abc", ["ABC", "abc"], ["abcd"]),
        ("((?i)PRO).*", ["production", "PROD"], ["dev"]),
        ("a(?i)b|c", ["ab", "aB", "C"], ["AB"]),  # the flag holds across | to the group's end
        ("(a(?s)b)(c)", ["abc"], ["ABC"]),
        ("[(?i)]x", ["(x", "ix"], ["Ix"]),
    ],
)
def test_regex_flags_hold_to_their_groups_end_as_in_re2(
    pattern: str, matches: list[str], misses: list[str]
) -> None:
    regex = compile_regex(pattern)
    assert [bool(regex.match(v)) for v in matches] == [True] * len(matches)
    assert [bool(regex.match(v)) for v in misses] == [False] * len(misses)


def test_a_time_the_parser_bindings_cannot_hold_is_bad_data_not_a_crash() -> None:
    with pytest.raises(PromQLError, match="cannot read"):
        parse("x @ -10")  # the bindings panic on a time before 1970
    assert parse("x @ 10") == parse("x @ 10.000")
