"""Graphite plaintext parser: grammar cases, bad lines by reason, fast and exact paths agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import graphite
from collector.graphite import parse_graphite
from collector.parse_result import ParseResult, parse_in_parts
from storage.records import NS_PER_S, Series
from tests.strategies import (
    BAD_GRAPHITE_LINES,
    graphite_lines,
    graphite_noise_lines,
    graphite_token_lines,
)

NOW = 1_700_000_000 * NS_PER_S


def points(data: bytes) -> list[tuple[Series, int, float]]:
    result = parse_graphite(data, NOW)
    assert not result.dropped, result.first_error
    return result.samples.points()


def as_tuple(result: ParseResult) -> tuple[object, ...]:
    return (result.samples.points(), dict(result.dropped), result.skipped_strings)


def test_plain_line_with_timestamp() -> None:
    assert points(b"servers.a.load 1.5 1700000100\n") == [
        (Series("servers.a.load"), 1_700_000_100 * NS_PER_S, 1.5)
    ]


@pytest.mark.parametrize("stamp", [b"", b" -1", b" -1.0"])
def test_missing_or_minus_one_timestamp_means_now(stamp: bytes) -> None:
    assert points(b"a 2" + stamp) == [(Series("a"), NOW, 2.0)]


def test_decimal_seconds_convert_exactly_to_ns() -> None:
    assert points(b"a 1 1700000000.123456789\na 1 1.5e9\na 1 7.") == [
        (Series("a"), 1_700_000_000_123_456_789, 1.0),
        (Series("a"), 1_500_000_000 * NS_PER_S, 1.0),
        (Series("a"), 7 * NS_PER_S, 1.0),
    ]


def test_values_in_every_number_form() -> None:
    body = b"a 1\na -2.5\na +3\na 1e3\na .5\na 6.\na -1.5E-2\na 0"
    assert [v for _, _, v in points(body)] == [1.0, -2.5, 3.0, 1000.0, 0.5, 6.0, -0.015, 0.0]


def test_tags_become_sorted_series_tags() -> None:
    assert points(b"disk.used;host=a;dc=eu 10 100") == [
        (Series("disk.used", (("dc", "eu"), ("host", "a"))), 100 * NS_PER_S, 10.0)
    ]


def test_repeated_tag_key_keeps_the_last_value() -> None:
    assert points(b"a;k=1;k=2 1 1")[0][0] == Series("a", (("k", "2"),))


def test_crlf_tabs_runs_of_spaces_and_blank_lines_are_accepted() -> None:
    body = b"a 1 1\r\n\r\n  b\t2   2 \n\n c 3 3\r\n"
    assert points(body) == [
        (Series("a"), NS_PER_S, 1.0),
        (Series("b"), 2 * NS_PER_S, 2.0),
        (Series("c"), 3 * NS_PER_S, 3.0),
    ]


def test_utf8_path_is_kept() -> None:
    assert points("température.salle 21 1".encode())[0][0] == Series("température.salle")


def test_empty_input_gives_an_empty_batch() -> None:
    for body in (b"", b"\n", b"\n\n  \n"):
        result = parse_graphite(body, NOW)
        assert len(result.samples) == 0
        assert not result.dropped


def test_repeated_paths_share_one_series_entry() -> None:
    result = parse_graphite(b"a 1 1\nb 2 1\na 3 2\n", NOW)
    assert list(result.samples.series) == [Series("a"), Series("b")]
    assert result.samples.index.tolist() == [0, 1, 0]
    assert result.samples.values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("reason", "line"),
    [(reason, line) for reason, lines in BAD_GRAPHITE_LINES.items() for line in lines],
)
def test_known_bad_line_is_dropped_with_its_reason(reason: str, line: bytes) -> None:
    result = parse_graphite(b"good 1 1\n" + line + b"\ngood 2 2\n", NOW)
    assert dict(result.dropped) == {reason: 1}
    assert result.first_error is not None
    assert result.first_error.reason == reason
    assert [v for _, _, v in result.samples.points()] == [1.0, 2.0]


def test_first_error_is_the_first_bad_line() -> None:
    result = parse_graphite(b"a x 1\nb nan 1\n", NOW)
    assert result.first_error is not None
    assert result.first_error.line == "a x 1"
    assert dict(result.dropped) == {"bad_value": 1, "non_finite": 1}


def test_timestamp_at_the_int64_limit_is_kept_and_beyond_it_dropped() -> None:
    assert points(b"a 1 9223372036.854775807")[0][1] == 2**63 - 1
    assert dict(parse_graphite(b"a 1 9223372036.854775808", NOW).dropped) == {"bad_timestamp": 1}


@pytest.mark.slow
@given(st.lists(graphite_lines(NOW), min_size=1, max_size=30), st.booleans())
def test_formatted_lines_parse_back_to_their_points(
    lines: list[tuple[bytes, tuple[Series, int, float]]], crlf: bool
) -> None:
    newline = b"\r\n" if crlf else b"\n"
    body = newline.join(line for line, _ in lines) + newline
    assert points(body) == [point for _, point in lines]


@pytest.mark.slow
@given(
    st.one_of(
        st.lists(st.one_of(graphite_lines(NOW).map(lambda lp: lp[0]), graphite_noise_lines)),
        st.booleans().flatmap(lambda valid: st.lists(graphite_token_lines(valid), max_size=8)),
    )
)
def test_fast_path_agrees_with_exact_path(lines: list[bytes]) -> None:
    body = b"\n".join(lines)
    if not body:
        return
    fast = graphite._parse_fast(body, NOW)
    exact = graphite._parse_exact(body, NOW)
    if fast is not None:
        assert as_tuple(fast) == as_tuple(exact)
        assert not exact.dropped


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_drop_lines(data: bytes) -> None:
    result = parse_graphite(data, NOW)
    nonblank = sum(1 for line in data.split(b"\n") if line.strip())
    assert len(result.samples) + sum(result.dropped.values()) == nonblank
    assert (result.first_error is None) == (not result.dropped)


@pytest.mark.parametrize(
    "body", [b"a.b 1 1\nc;k=v -2.5e3 2\n", b"a 1\nb 2\r\n", b"a_b 1_0 1", b"a 1 -1", b"a  1 1"]
)
def test_fast_path_takes_plain_chunks_and_hands_over_the_rest(body: bytes) -> None:
    plain = b"_0" not in body and b"-1" not in body and b"  " not in body
    assert (graphite._parse_fast(body.rstrip(b"\r\n"), NOW) is not None) == plain


@pytest.mark.slow
@given(
    st.lists(
        st.one_of(graphite_lines(NOW).map(lambda lp: lp[0]), graphite_token_lines(False)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 64),
)
def test_splitting_around_odd_lines_gives_the_exact_result(
    lines: list[bytes], min_bytes: int
) -> None:
    body = b"\n".join(lines)
    split = parse_in_parts(
        body,
        lambda part: graphite._parse_fast(part, NOW),
        lambda part: graphite._parse_exact(part, NOW),
        min_bytes,
    )
    exact = graphite._parse_exact(body, NOW)
    assert as_tuple(split) == as_tuple(exact)
    assert str(split.first_error) == str(exact.first_error)


def test_a_large_chunk_with_a_few_bad_lines_keeps_every_good_line() -> None:
    lines = [b"m.%d %d %d" % (i % 10, i, i) for i in range(5000)]
    for bad in (7, 2500, 4999):
        lines[bad] = b"m.bad nan 1"
    result = parse_graphite(b"\n".join(lines) + b"\n", NOW)
    assert dict(result.dropped) == {"non_finite": 3}
    assert result.samples.values.tolist() == [
        float(i) for i in range(5000) if i not in (7, 2500, 4999)
    ]
