"""etsy/statsd's own cases, as Shipboard must read and aggregate them.

Every row comes from etsy/statsd at tag v0.10.2 (commit 0e20be57d4918dadf5b5fad61b5c61ef382f8860;
stats.js, lib/ and test/ are the same as at v0.9.0 but for one pickle test) and names its
source: a test of `test/helpers_tests.js` (the line check `is_valid_packet`), of
`test/graphite_tests.js` (a packet sent, what the flush reports), of
`test/process_metrics_tests.js` (the flush statistics), or `stats.js` itself. A parser row
gives a line and either the metrics Shipboard reads from it or the reason it is dropped
(etsy counts every such line in `bad_lines_seen`); an aggregator row gives packets and the
points of the flush. Shipboard reports a counter as `.count` and `.rate` and a timer's
percentile as `.pNN`, which is etsy's `upper_NN`.

Where etsy's versions disagree Shipboard follows 0.9/0.10: before 0.9 a name lost its `;`
and `=` (`fo/o;tag1=val1` was `fo-otag1val1`), since then they carry Graphite tags. Where
Shipboard differs on purpose a row says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from collector.errors import ParseError
from collector.stats import IngestStats
from collector.statsd import COUNTER, GAUGE, SET, TIMER, parse_line
from collector.statsd_aggregate import StatsdAggregator

NOW = 1_700_000_000_000_000_000
HELPERS = "helpers_tests.js"
GRAPHITE = "graphite_tests.js"
PROCESS = "process_metrics_tests.js"

# (metric, tags, kind, value or set member, rate, gauge delta)
Metric = tuple[str, dict[str, str], int, float | bytes, float, bool]


@dataclass(frozen=True)
class LineCase:
    source: str  # file and test name
    line: bytes
    metrics: tuple[Metric, ...] = ()
    reason: str | None = None  # why the line is dropped

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line!r}"


def valid(
    source: str,
    line: bytes,
    kind: int,
    value: float | bytes,
    rate: float = 1.0,
    delta: bool = False,
) -> LineCase:
    """A one-value line of the metric `a` (the name is_valid_packet never sees)."""
    return LineCase(source, line, (("a", {}, kind, value, rate, delta),))


def invalid(source: str, reason: str, *lines: bytes) -> list[LineCase]:
    return [LineCase(source, line, reason=reason) for line in lines]


LINE_CASES: list[LineCase] = [
    # is_valid_packet(fields) is given `value|type|rate` split at `|`; here it is the group of
    # the line `a:<fields joined by |>`.
    *invalid(f"{HELPERS} no_metrics_field", "bad_format", b"a:foo"),
    *invalid(f"{HELPERS} wrong_formated_metric_value", "bad_value", b"a:0,345345|ms"),
    *invalid(f"{HELPERS} wrong_formated_sampling_value", "bad_rate", b"a:345345|ms|0,456456"),
    *invalid(f"{HELPERS} counter_empty_are_invalid", "bad_value", b"a:|c"),
    valid(f"{HELPERS} counter_deltas_scientific_are_valid", b"a:+10e1|c", COUNTER, 100.0),
    valid(f"{HELPERS} counter_deltas_positive_are_valid", b"a:+10|c", COUNTER, 10.0),
    valid(f"{HELPERS} counter_deltas_positive_are_valid", b"a:+10e1|c", COUNTER, 100.0),
    valid(f"{HELPERS} counter_deltas_negative_are_valid", b"a:-10|c", COUNTER, -10.0),
    # etsy refuses a negative timer: a bad line, counted.
    *invalid(f"{HELPERS} times_negative_are_invalid", "bad_value", b"a:-1|ms", b"a:-1.0|ms"),
    valid(f"{HELPERS} times_positive_are_valid", b"a:+1|ms", TIMER, 1.0),
    valid(f"{HELPERS} times_positive_are_valid", b"a:1.0|ms", TIMER, 1.0),
    valid(f"{HELPERS} times_positive_are_valid", b"a:+1.0|ms", TIMER, 1.0),
    valid(f"{HELPERS} times_zero_are_valid", b"a:+0.0|ms", TIMER, 0.0),
    valid(f"{HELPERS} times_zero_are_valid", b"a:-0.0|ms", TIMER, 0.0),  # Number("-0.0") >= 0
    valid(f"{HELPERS} times_zero_are_valid", b"a:0.0|ms", TIMER, 0.0),
    valid(f"{HELPERS} times_zero_are_valid", b"a:0|ms", TIMER, 0.0),
    *invalid(f"{HELPERS} gauges_empty_are_invalid", "bad_value", b"a:|g"),
    valid(f"{HELPERS} gauges_delta_positive_are_valid", b"a:10|g", GAUGE, 10.0),
    valid(f"{HELPERS} gauges_delta_positive_are_valid", b"a:+10|g", GAUGE, 10.0, delta=True),
    valid(f"{HELPERS} gauges_delta_positive_are_valid", b"a:10.0|g", GAUGE, 10.0),
    valid(f"{HELPERS} gauges_delta_positive_are_valid", b"a:+10.0|g", GAUGE, 10.0, delta=True),
    valid(f"{HELPERS} gauges_delta_negative_are_valid", b"a:-10|g", GAUGE, -10.0, delta=True),
    valid(f"{HELPERS} gauges_delta_negative_are_valid", b"a:-10.0|g", GAUGE, -10.0, delta=True),
    valid(f"{HELPERS} sets_strings_are_valid", b"a:foo|s", SET, b"foo"),
    valid(f"{HELPERS} sets_numeric_are_valid", b"a:123456|s", SET, b"123456"),
    *invalid(
        f"{HELPERS} sampling_is_invalid",
        "bad_rate",
        b"a:345345|ms|",
        b"a:345345|ms|b",
        b"a:345345|ms|blah",
        b"a:345345|ms|@",
        b"a:345345|ms|@blah",
        b"a:345345|ms|@.",
        b"a:345345|ms|@.1.",
        b"a:345345|ms|@.1.2.3",
        b"a:345345|ms|@-1.0",
    ),
    # A rate above 1 is valid: each value counts 1 / rate times.
    valid(f"{HELPERS} sampling_is_valid", b"a:345345|ms|@2", TIMER, 345345.0, rate=2.0),
    valid(f"{HELPERS} sampling_is_valid", b"a:345345|ms|@.2", TIMER, 345345.0, rate=0.2),
    valid(f"{HELPERS} sampling_is_valid", b"a:345345|ms|@0.2", TIMER, 345345.0, rate=0.2),
    # Valid to etsy too, whose stats.js then reads only the leading digits (a rate of 2);
    # Shipboard takes the number that was checked, 0.2.
    valid(f"{HELPERS} sampling_is_valid", b"a:345345|ms|@2e-1", TIMER, 345345.0, rate=0.2),
    valid(f"{HELPERS} correct_packet", b"a:345345|ms|@1.0", TIMER, 345345.0),
    valid(
        f"{HELPERS} correct_packet_with_small_sampling", b"a:100|ms|@0.1", TIMER, 100.0, rate=0.1
    ),
    valid(f"{HELPERS} correct_counter_with_float", b"a:1.0|c|@0.1", COUNTER, 1.0, rate=0.1),
    # The line of send_malformed_post: no `:`, so no value and no type.
    *invalid(f"{GRAPHITE} send_malformed_post", "bad_format", b"a_bad_test_value|z"),
    LineCase(
        f"{GRAPHITE} metric_names_are_sanitized",
        b"fo/o:250|c",
        (("fo-o", {}, COUNTER, 250.0, 1.0, False),),
    ),
    LineCase(
        f"{GRAPHITE} metric_names_are_sanitized",
        b"b ar:250|c",
        (("b_ar", {}, COUNTER, 250.0, 1.0, False),),
    ),
    LineCase(
        f"{GRAPHITE} metric_names_are_sanitized",
        b"foo+bar:250|c",
        (("foobar", {}, COUNTER, 250.0, 1.0, False),),
    ),
    # Graphite tags in a StatsD name: the metric `fo-o` with the tag tag1=val1.
    LineCase(
        f"{GRAPHITE} graphite_tags_are_supported",
        b"fo/o;tag1=val1:250|c",
        (("fo-o", {"tag1": "val1"}, COUNTER, 250.0, 1.0, False),),
    ),
    LineCase(
        f"{GRAPHITE} graphite_tags_are_supported",
        b"b ar;tag1=val1;tag2=val2:250|c",
        (("b_ar", {"tag1": "val1", "tag2": "val2"}, COUNTER, 250.0, 1.0, False),),
    ),
    LineCase(
        f"{GRAPHITE} graphite_tags_are_supported",
        b"foo+bar;tag1=val1;tag3=val3;tag2=val2:250|c",
        (("foobar", {"tag1": "val1", "tag3": "val3", "tag2": "val2"}, COUNTER, 250.0, 1.0, False),),
    ),
    LineCase(
        f"{GRAPHITE} dogstatsd_tags_are_supported",
        b"fo/o:250|c|#tag1:val1",
        (("fo-o", {"tag1": "val1"}, COUNTER, 250.0, 1.0, False),),
    ),
    LineCase(
        f"{GRAPHITE} dogstatsd_tags_are_supported",
        b"b ar:250|c|#tag1:val1,tag2:val2",
        (("b_ar", {"tag1": "val1", "tag2": "val2"}, COUNTER, 250.0, 1.0, False),),
    ),
    # A `;` in a DogStatsD tag becomes `_` (etsy: `tag.replace(';', '_')`).
    LineCase(
        f"{GRAPHITE} dogstatsd_tags_are_supported",
        b"foo+bar:250|c|#tag1:val;1,tag3:val3,tag2:val2",
        (
            (
                "foobar",
                {"tag1": "val_1", "tag3": "val3", "tag2": "val2"},
                COUNTER,
                250.0,
                1.0,
                False,
            ),
        ),
    ),
    # stats.js: a name without value (`bits.length === 0`) gets the value "1" but no type.
    *invalid("stats.js handlePacket", "bad_format", b"gorets"),
    # A group missing its value is read as `Number(fields[0] || ...)`, but is_valid_packet
    # has refused it first.
    *invalid("stats.js handlePacket", "bad_value", b"gorets:|c", b"glork:|ms"),
]


def as_tuple(line: bytes) -> tuple[Metric, ...]:
    return tuple(
        (
            m.series.metric,
            dict(m.series.tags),
            m.kind,
            m.member if m.kind == SET else m.value,
            m.rate,
            m.delta,
        )
        for m in parse_line(line)
    )


@pytest.mark.parametrize("case", LINE_CASES, ids=[case.id for case in LINE_CASES])
def test_upstream_line(case: LineCase) -> None:
    if case.reason is None:
        assert as_tuple(case.line) == case.metrics
        return
    with pytest.raises(ParseError) as info:
        parse_line(case.line)
    assert info.value.reason == case.reason


@pytest.mark.parametrize("case", LINE_CASES, ids=[case.id for case in LINE_CASES])
def test_upstream_line_through_the_aggregator(case: LineCase) -> None:
    """Each line alone and amid good lines, on the fast path (its key learnt first from a good
    line) and the exact one: a bad line counted and stored as nothing at all."""
    for exact in (False, True):
        stats = IngestStats()
        agg = StatsdAggregator(stats, flush_interval_s=10.0, idle_flushes=1)
        ingest = agg.ingest_exact if exact else agg.ingest
        ingest(b"before:1|c\n" + case.line + b"\nafter:1|c")
        points = {str(s): v for s, _, v in agg.flush(NOW).samples.points()}
        assert points.pop("before.count") == points.pop("after.count") == 1.0
        points = {k: v for k, v in points.items() if not k.startswith(("before.", "after."))}
        if case.reason is None:
            assert points
            assert dict(stats.dropped) == {}
        else:
            assert points == {}
            assert dict(stats.dropped) == {("statsd", case.reason): 1}


@dataclass(frozen=True)
class FlushCase:
    source: str
    packets: tuple[bytes, ...]
    points: dict[str, float]  # every point of the flush, by series
    flush_interval_s: float = 10.0
    percentiles: tuple[float, ...] = (90,)
    dropped: dict[str, int] | None = None

    @property
    def id(self) -> str:
        return f"{self.source}:{self.packets[0][:50]!r}"


def timer(name: str, values: list[float], count: float, **percentiles: float) -> dict[str, float]:
    """The fields Shipboard reports for a timer of `values`, etsy's way."""
    ordered = sorted(values)
    n = len(ordered)
    mean = sum(ordered) / n
    mid = n // 2
    median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    std = math.sqrt(sum((v - mean) ** 2 for v in ordered) / n)
    fields = {
        "count": count,
        "sum": sum(ordered),
        "mean": mean,
        "lower": ordered[0],
        "upper": ordered[-1],
        "median": median,
        "std": std,
    }
    fields |= percentiles
    return {f"{name}.{k}": v for k, v in fields.items()}


FLUSH_CASES: list[FlushCase] = [
    FlushCase(
        f"{GRAPHITE} send_malformed_post",
        (b"a_bad_test_value|z",),
        {},
        dropped={"bad_format": 1},
    ),
    # flushInterval 200 ms; etsy's mean_90 is Shipboard's mean (one value), upper_90 its p90.
    FlushCase(
        f"{GRAPHITE} timers_are_valid",
        (b"a_test_value:100|ms",),
        timer("a_test_value", [100], 1, p90=100),
        flush_interval_s=0.2,
    ),
    FlushCase(
        f"{GRAPHITE} sampled_timers_are_valid",
        (b"a_test_value:100|ms|@0.1",),
        timer("a_test_value", [100], 10, p90=100),
        flush_interval_s=0.2,
    ),
    FlushCase(
        f"{GRAPHITE} counts_are_valid",
        (b"a_test_value:100|c",),
        {"a_test_value.count": 100, "a_test_value.rate": 100 / 0.2},
        flush_interval_s=0.2,
    ),
    FlushCase(f"{GRAPHITE} gauges_are_valid", (b"a_test_value:70|g",), {"a_test_value": 70}),
    FlushCase(
        f"{GRAPHITE} gauge_modifications_are_valid",
        (b"test_value:50|g", b"test_value:-3|g"),
        {"test_value": 47},
    ),
    FlushCase(
        f"{GRAPHITE} metric_names_are_sanitized",
        (b"fo/o:250|c", b"b ar:250|c", b"foo+bar:250|c"),
        {
            f"{n}.{f}": v
            for n in ("fo-o", "b_ar", "foobar")
            for f, v in (("count", 250), ("rate", 25))
        },
    ),
    FlushCase(
        f"{GRAPHITE} graphite_tags_are_supported",
        (
            b"fo/o;tag1=val1:250|c",
            b"b ar;tag1=val1;tag2=val2:250|c",
            b"foo+bar;tag1=val1;tag3=val3;tag2=val2:250|c",
        ),
        {
            f"{name}.{f}{{{tags}}}": v
            for name, tags in [
                ("fo-o", "tag1=val1"),
                ("b_ar", "tag1=val1,tag2=val2"),
                ("foobar", "tag1=val1,tag2=val2,tag3=val3"),
            ]
            for f, v in (("count", 250), ("rate", 25))
        },
    ),
    FlushCase(
        f"{GRAPHITE} dogstatsd_tags_are_supported",
        (
            b"fo/o:250|c|#tag1:val1",
            b"b ar:250|c|#tag1:val1,tag2:val2",
            b"foo+bar:250|c|#tag1:val;1,tag3:val3,tag2:val2",
        ),
        {
            f"{name}.{f}{{{tags}}}": v
            for name, tags in [
                ("fo-o", "tag1=val1"),
                ("b_ar", "tag1=val1,tag2=val2"),
                ("foobar", "tag1=val_1,tag2=val2,tag3=val3"),
            ]
            for f, v in (("count", 250), ("rate", 25))
        },
    ),
    FlushCase(
        f"{PROCESS} counters_has_correct_rate",
        (b"a:2|c",),
        {"a.count": 2, "a.rate": 20},
        flush_interval_s=0.1,
    ),
    FlushCase(
        f"{PROCESS} timers_single_time",
        (b"a:100|ms",),
        timer("a", [100], 1, p90=100),
        flush_interval_s=0.1,
    ),
    FlushCase(
        f"{PROCESS} timers_multiple_times",
        (b"a:100|ms\na:200|ms\na:300|ms",),
        timer("a", [100, 200, 300], 3, p90=300) | {"a.std": 81.64965809277261},
        flush_interval_s=0.1,
    ),
    FlushCase(
        f"{PROCESS} timers_multiple_times_multiple_percentiles",
        (b"a:100|ms\na:200|ms\na:300|ms",),
        timer("a", [100, 200, 300], 3, p90=300, p80=200),
        flush_interval_s=0.1,
        percentiles=(90, 80),
    ),
    # timer_counters 50 for three values: sample rates whose weights sum to 50.
    FlushCase(
        f"{PROCESS} timers_sampled_times",
        (b"a:100|ms|@0.1\na:200|ms|@0.05\na:300|ms|@0.05",),
        timer("a", [100, 200, 300], 50, p90=300, p80=200),
        flush_interval_s=0.1,
        percentiles=(90, 80),
    ),
    FlushCase(
        f"{PROCESS} timers_multiple_times_even",
        (b"a:300|ms\na:200|ms\na:400|ms\na:100|ms",),
        timer("a", [100, 200, 300, 400], 4, p90=400) | {"a.median": 250},
    ),
    # docs/metric_types.md's multi-metric packet, and the same packet with bad lines in it:
    # the good lines are stored, each bad one counted and stored as nothing at all.
    FlushCase(
        "stats.js handlePacket (multi-metric packet)",
        (b"gorets:1|c\nglork:320|ms\ngaugor:333|g\nuniques:765|s",),
        {"gorets.count": 1, "gorets.rate": 0.1, "gaugor": 333, "uniques.count": 1}
        | timer("glork", [320], 1, p90=320),
    ),
    FlushCase(
        "stats.js handlePacket (multi-metric packet with bad lines)",
        (b"gorets:1|c\nglork:-320|ms\ngaugor:333|g\nuniques:765|s|@0\nbad|z\nmore:2|c",),
        {"gorets.count": 1, "gorets.rate": 0.1, "gaugor": 333, "more.count": 2, "more.rate": 0.2},
        dropped={"bad_value": 1, "bad_rate": 1, "bad_format": 1},
    ),
    # A rate above 1: each value counts half.
    FlushCase(
        f"{HELPERS} sampling_is_valid (as stats.js counts it)",
        (b"a:345345|ms|@2\nb:10|c|@2",),
        timer("a", [345345], 0.5, p90=345345) | {"b.count": 5, "b.rate": 0.5},
    ),
]


@pytest.mark.parametrize("case", FLUSH_CASES, ids=[case.id for case in FLUSH_CASES])
@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
def test_upstream_flush(case: FlushCase, exact: bool) -> None:
    stats = IngestStats()
    agg = StatsdAggregator(
        stats, flush_interval_s=case.flush_interval_s, percentiles=case.percentiles
    )
    for packet in case.packets:
        (agg.ingest_exact if exact else agg.ingest)(packet)
    points = {str(s): v for s, _, v in agg.flush(NOW).samples.points()}
    assert points == pytest.approx(case.points)
    assert {reason: n for (_, reason), n in stats.dropped.items()} == (case.dropped or {})


def test_a_bad_timer_line_of_a_known_key_is_stored_as_nothing_on_the_fast_path() -> None:
    """The fast path knows `glork:|ms` from the first interval; a negative value for it later
    is still refused (and counted), and does not mark the timer as seen."""
    stats = IngestStats()
    agg = StatsdAggregator(stats, flush_interval_s=10.0, idle_flushes=0)
    agg.ingest(b"glork:320|ms\ngorets:1|c")
    assert agg.flush(NOW).samples.points()
    agg.ingest(b"glork:-320|ms\ngorets:1|c")
    points = {str(s): v for s, _, v in agg.flush(NOW).samples.points()}
    assert points == {"gorets.count": 1.0, "gorets.rate": 0.1}
    assert dict(stats.dropped) == {("statsd", "bad_value"): 1}
    agg.ingest(b"glork:-0.0|ms")  # Number("-0.0") >= 0 in etsy
    assert {str(s) for s, _, _ in agg.flush(NOW).samples.points()} >= {"glork.count", "glork.upper"}
