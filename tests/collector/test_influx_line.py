"""InfluxDB line protocol parser: every grammar rule, bad lines by reason, both paths agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import influx_exact, influx_line, influx_tokens
from collector.errors import ParseError
from collector.influx_line import PRECISION_NS, parse_influx
from collector.parse_result import ParseResult
from storage.records import Series
from tests.strategies import (
    BAD_INFLUX_LINES,
    INFLUX_BOOLEANS,
    influx_lines,
    influx_token_lines,
)

NOW = 1_700_000_000_000_000_000


def points(body: bytes, precision: str = "ns") -> list[tuple[Series, int, float]]:
    result = parse_influx(body, NOW, precision)
    assert not result.dropped, result.first_error
    return result.samples.points()


def as_tuple(result: ParseResult) -> tuple[object, ...]:
    return (result.samples.points(), dict(result.dropped), result.skipped_strings)


def sorted_tuple(result: ParseResult) -> tuple[object, ...]:
    """As `as_tuple`, with points in a canonical order (lines with strings come grouped)."""
    return (sorted(result.samples.points(), key=repr), dict(result.dropped), result.skipped_strings)


def test_each_field_becomes_a_series_named_measurement_dot_field() -> None:
    host_a = (("host", "a"),)
    assert points(b"cpu,host=a usage_user=1,usage_system=2 1000\n") == [
        (Series("cpu.usage_user", host_a), 1000, 1.0),
        (Series("cpu.usage_system", host_a), 1000, 2.0),
    ]


def test_tags_are_sorted_by_key() -> None:
    series = points(b"m,zone=z,app=web,host=h v=1 1")[0][0]
    assert series.tags == (("app", "web"), ("host", "h"), ("zone", "z"))


def test_missing_timestamp_means_now() -> None:
    assert points(b"m v=1") == [(Series("m.v"), NOW, 1.0)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"1", 1.0),
        (b"-1.5", -1.5),
        (b"1e3", 1000.0),
        (b"1E-2", 0.01),
        (b"2.5e+2", 250.0),
        (b".5", 0.5),
        (b"7.", 7.0),
        (b"-0", 0.0),
        (b"42i", 42.0),
        (b"-9223372036854775808i", -9223372036854775808.0),
        (b"18446744073709551615u", 18446744073709551615.0),
        (b"0u", 0.0),
    ],
)
def test_number_forms(text: bytes, value: float) -> None:
    assert points(b"m v=" + text + b" 1") == [(Series("m.v"), 1, value)]


@pytest.mark.parametrize(("text", "value"), sorted(INFLUX_BOOLEANS.items()))
def test_booleans_are_one_and_zero(text: str, value: float) -> None:
    assert points(f"m ok={text} 1".encode()) == [(Series("m.ok"), 1, value)]


def test_string_fields_are_skipped_and_counted() -> None:
    result = parse_influx(b'm msg="hello, world",v=1,note="a \\"b\\" \\\\ c" 5', NOW)
    assert result.samples.points() == [(Series("m.v"), 5, 1.0)]
    assert result.skipped_strings == 2
    assert not result.dropped


def test_line_with_only_string_fields_keeps_nothing_and_is_no_error() -> None:
    result = parse_influx(b'log msg="started" 5\nm v=1 6\n', NOW)
    assert result.samples.points() == [(Series("m.v"), 6, 1.0)]
    assert result.skipped_strings == 1
    assert not result.dropped
    assert result.first_error is None


def test_lines_with_strings_beside_plain_lines_lose_no_point() -> None:
    body = b'cpu v=1 1\nsystem up=5i,fmt="1 day, 2:03" 2\ncpu v=2 3\nbad v=x,s="q" 4\ncpu v=3 5\n'
    assert influx_line._parse_with_strings(body, NOW, 1) is not None
    result = parse_influx(body, NOW)
    assert sorted(result.samples.points(), key=repr) == sorted(
        [
            (Series("cpu.v"), 1, 1.0),
            (Series("system.up"), 2, 5.0),
            (Series("cpu.v"), 3, 2.0),
            (Series("cpu.v"), 5, 3.0),
        ],
        key=repr,
    )
    assert result.skipped_strings == 1
    assert dict(result.dropped) == {"bad_value": 1}


def test_string_field_may_hold_spaces_commas_equals_and_newlines() -> None:
    result = parse_influx(b'm s="a b,c=d\nnext v=9 9",v=1 5\nn w=2 6', NOW)
    assert result.samples.points() == [(Series("m.v"), 5, 1.0), (Series("n.w"), 6, 2.0)]
    assert result.skipped_strings == 1


def test_escapes_in_measurement_tags_and_field_keys() -> None:
    body = rb"my\ cpu\,x,ho\ st\=1=a\,b\=c\ d fi\,eld\=\ k=1 1"
    assert points(body) == [(Series("my cpu,x.fi,eld= k", (("ho st=1", "a,b=c d"),)), 1, 1.0)]


def test_other_backslashes_stay_literal() -> None:
    assert points(rb"c:\dir,path=C:\x v\n=1 1") == [
        (Series(r"c:\dir.v\n", (("path", r"C:\x"),)), 1, 1.0)
    ]


def test_equals_sign_in_a_measurement_is_literal() -> None:
    assert points(b"a=b v=1 1") == [(Series("a=b.v"), 1, 1.0)]


def test_comments_blank_lines_crlf_and_extra_spaces_are_accepted() -> None:
    body = b"# a comment\n\n  m v=1   1\r\n\t# indented comment\r\n\nm v=2 2  \n\n"
    assert points(body) == [(Series("m.v"), 1, 1.0), (Series("m.v"), 2, 2.0)]


@pytest.mark.parametrize(("precision", "unit_ns"), sorted(PRECISION_NS.items()))
def test_precision_scales_timestamps(precision: str, unit_ns: int) -> None:
    assert points(b"m v=1 3\nm v=2 -2", precision) == [
        (Series("m.v"), 3 * unit_ns, 1.0),
        (Series("m.v"), -2 * unit_ns, 2.0),
    ]


def test_unknown_precision_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="precision"):
        parse_influx(b"m v=1", NOW, "weeks")


def test_timestamp_beyond_int64_after_scaling_is_dropped() -> None:
    result = parse_influx(b"m v=1 9223372036854775807\nm v=1 9223372037", NOW, "s")
    assert dict(result.dropped) == {"bad_timestamp": 2}
    assert points(b"m v=1 9223372036", "s")[0][1] == 9_223_372_036_000_000_000


def test_duplicate_field_keys_are_both_kept() -> None:
    assert [v for _, _, v in points(b"m v=1,v=2 1")] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("reason", "line"),
    [(reason, line) for reason, lines in BAD_INFLUX_LINES.items() for line in lines],
)
def test_known_bad_line_is_dropped_with_its_reason(reason: str, line: bytes) -> None:
    result = parse_influx(b"good v=1 1\n" + line + b"\ngood v=2 2\n", NOW)
    assert dict(result.dropped) == {reason: 1}
    assert result.first_error is not None
    assert result.first_error.reason == reason
    assert [v for _, _, v in result.samples.points()] == [1.0, 2.0]


def test_one_bad_field_drops_its_whole_line() -> None:
    result = parse_influx(b"m a=1,b=x,c=3 1\nm a=4 2", NOW)
    assert result.samples.points() == [(Series("m.a"), 2, 4.0)]
    assert dict(result.dropped) == {"bad_value": 1}


@pytest.mark.slow
@given(
    st.sampled_from(sorted(PRECISION_NS.items())).flatmap(
        lambda p: st.tuples(st.just(p[0]), st.lists(influx_lines(NOW, p[1]), max_size=12))
    ),
    st.booleans(),
)
def test_formatted_lines_parse_back_to_their_points(
    precision_lines: tuple[str, list[tuple[bytes, list[tuple[Series, int, float]], int]]],
    crlf: bool,
) -> None:
    precision, lines = precision_lines
    newline = b"\r\n" if crlf else b"\n"
    body = newline.join(line for line, _, _ in lines)
    result = parse_influx(body, NOW, precision)
    assert not result.dropped, result.first_error
    expected = [p for _, line_points, _ in lines for p in line_points]
    assert sorted(result.samples.points(), key=repr) == sorted(expected, key=repr)
    assert result.skipped_strings == sum(strings for _, _, strings in lines)


@pytest.mark.slow
@given(
    st.one_of(
        st.lists(st.one_of(influx_lines(NOW).map(lambda line: line[0]), st.binary(max_size=20))),
        st.booleans().flatmap(lambda valid: st.lists(influx_token_lines(valid), max_size=8)),
    ),
    st.sampled_from(["ns", "s", "h"]),
)
def test_fast_path_agrees_with_exact_path(lines: list[bytes], precision: str) -> None:
    body = b"\n".join(lines)
    unit_ns = PRECISION_NS[precision]
    fast = influx_line._parse_fast(body, NOW, unit_ns)
    exact = influx_exact.parse_exact(body, NOW, unit_ns)
    if fast is not None:
        assert as_tuple(fast) == as_tuple(exact)
        assert not exact.dropped
    with_strings = influx_line._parse_with_strings(body, NOW, unit_ns)
    if with_strings is not None:
        assert sorted_tuple(with_strings) == sorted_tuple(exact)
        # A bad line, though not always the first of the body: the groups are parsed apart.
        error = with_strings.first_error
        assert (error is None) == (exact.first_error is None)
        assert error is None or error.reason in exact.dropped


@pytest.mark.parametrize(
    "body",
    [b"cpu,host=a v=1,w=2i 1\nmem x=t 2\n", b"m v=1", b"cpu,host=a v=1 1\nm v=2", b'm s="x" 1'],
)
def test_fast_path_takes_plain_bodies_and_hands_over_the_rest(body: bytes) -> None:
    plain = b"\nm v=2" not in body and b'"' not in body
    assert (influx_line._parse_fast(body, NOW, 1) is not None) == plain


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_drop_lines(data: bytes) -> None:
    result = parse_influx(data, NOW)
    assert (result.first_error is None) == (not result.dropped)
    assert sum(result.dropped.values()) <= data.count(b"\n") + 1


def test_a_large_body_with_a_few_bad_lines_keeps_every_good_line() -> None:
    lines = [b"m,host=h%d v=%d %d" % (i % 10, i, i) for i in range(5000)]
    for bad in (7, 2500, 4999):
        lines[bad] = b"m v=oops 1"
    result = parse_influx(b"\n".join(lines), NOW)
    assert dict(result.dropped) == {"bad_value": 3}
    assert result.first_error is not None
    assert result.first_error.line == "m v=oops 1"
    assert result.samples.values.tolist() == [
        float(i) for i in range(5000) if i not in (7, 2500, 4999)
    ]


def test_bodies_of_one_shape_reuse_series_but_keep_their_own_values_and_times():
    first = parse_influx(b"cpu,host=a u=1,s=2 10\nmem,host=a used=3 10\n", 0, "s")
    second = parse_influx(b"cpu,host=a u=4,s=5 20\nmem,host=a used=6 20\n", 0, "s")
    assert first.samples.series == second.samples.series
    assert [(str(s), t, v) for s, t, v in second.samples.points()] == [
        ("cpu.u{host=a}", 20 * 10**9, 4.0),
        ("cpu.s{host=a}", 20 * 10**9, 5.0),
        ("mem.used{host=a}", 20 * 10**9, 6.0),
    ]


def test_same_keys_and_names_spread_differently_over_lines_are_different_shapes():
    one = parse_influx(b"a x=1,y=2\nb z=3\n", 7, "ns")
    other = parse_influx(b"a x=1\nb y=2,z=3\n", 7, "ns")
    assert [str(s) for s, _, _ in one.samples.points()] == ["a.x", "a.y", "b.z"]
    assert [str(s) for s, _, _ in other.samples.points()] == ["a.x", "b.y", "b.z"]


@given(st.binary(max_size=40) | st.text(",= =a\x00é", max_size=20).map(str.encode))
def test_the_plain_key_path_agrees_with_the_checked_one(raw: bytes) -> None:
    """Every key the one-split path reads is read the same by the rule-by-rule path, and every
    key that path refuses, the one-split path leaves to it."""
    plain = influx_tokens._plain_key(raw)
    try:
        checked = influx_tokens.checked_key(raw, raw)
    except ParseError:
        assert plain is None
        return
    if plain is not None:
        assert (plain.prefix, plain.tags) == (checked.prefix, checked.tags)
    else:
        assert b"\\" in raw or "=" in "".join(v for _, v in checked.tags)
