r"""InfluxDB 1.x's own line-protocol cases, as Shipboard must read them.

Every row comes from `models/points_test.go` of influxdata/influxdb at tag v1.8.10 (commit
688e697c51fd5353725da078555adbeff0363d01; the parsing cases are the same up to v1.12.0) and
names its test. A row gives the body and either the points Shipboard keeps (a numeric field
of `measurement` is the series `measurement.field`; string fields are skipped and counted) or
the reason the line is dropped. Upstream's errors map to Shipboard's reasons: "missing
fields" is `no_field`; missing or malformed tag keys and values and duplicate tags are
`bad_tag`; missing field keys or values, "invalid field format" and unbalanced quotes are
`bad_field`; a value that is no number or boolean, or an integer out of range, is
`bad_value`; NaN and floats out of range are `non_finite`; a bad or out-of-range timestamp
is `bad_timestamp`; "max key length exceeded" is `key_too_long`.

Upstream's `test()` helper parses with the default time 0 and precision `n`, as these rows do
unless they say otherwise. Where points_test.go enables unsigned integers (`EnableUintSupport`)
Shipboard takes them too, as InfluxDB 2.x does.
"""

from __future__ import annotations

import pytest

from collector import influx_exact
from collector.influx_line import PRECISION_NS, parse_influx
from tests.collector.influx_upstream import Case, Point
from tests.collector.influx_upstream_lines import LINE_CASES
from tests.collector.influx_upstream_values import VALUE_CASES

CASES = [*VALUE_CASES, *LINE_CASES]


def parse(case: Case, exact: bool = False) -> tuple[list[Point], dict[str, int], int]:
    precision = "ns" if case.precision is None else case.precision
    if exact:
        now_ns = case.now_ns - case.now_ns % PRECISION_NS[precision]
        result = influx_exact.parse_exact(case.body, now_ns, PRECISION_NS[precision])
    elif case.precision is None:
        result = parse_influx(case.body, case.now_ns)
    else:
        result = parse_influx(case.body, case.now_ns, precision)
    return result.samples.points(), dict(result.dropped), result.skipped_strings


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_upstream_case(case: Case) -> None:
    # Lines with strings are parsed as a group beside the others, so points may come grouped.
    points, dropped, strings = parse(case)
    assert sorted(points, key=repr) == sorted(case.points, key=repr)
    assert (dropped, strings) == ({} if case.dropped is None else {case.dropped: 1}, case.strings)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_upstream_case_on_the_exact_path_alone(case: Case) -> None:
    dropped = {} if case.dropped is None else {case.dropped: 1}
    assert parse(case, exact=True) == (case.points, dropped, case.strings)


def test_upstream_bad_lines_cost_only_themselves_in_a_body() -> None:
    """Every bad line of the table between two good lines, in one body: each is dropped with
    its reason and both neighbours are kept. (A string left open runs on to the next quote of
    the body, in InfluxDB too, so lines with an odd number of quotes are left out.)"""
    bad_cases = [
        case
        for case in CASES
        if case.dropped is not None and b"\n" not in case.body and case.body.count(b'"') % 2 == 0
    ]
    body = b"\n".join(b"ok v=%d %d\n%s" % (i, i, case.body) for i, case in enumerate(bad_cases))
    result = parse_influx(body + b"\nok v=-1 -1", 0)
    expected: dict[str, int] = {}
    for case in bad_cases:
        assert case.dropped is not None
        expected[case.dropped] = expected.get(case.dropped, 0) + 1
    assert dict(result.dropped) == expected
    assert [v for _, _, v in result.samples.points()] == [*map(float, range(len(bad_cases))), -1.0]
