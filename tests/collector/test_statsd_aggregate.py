"""StatsD flush aggregation: etsy's numbers by hand, idle expiry, and fast path == exact path."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.stats import IngestStats
from collector.statsd_aggregate import StatsdAggregator
from storage.records import Series
from tests.strategies import BAD_STATSD_LINES, statsd_hostile_lines, statsd_lines

NOW = 1_700_000_000_000_000_000


def make(**kwargs: object) -> tuple[StatsdAggregator, IngestStats]:
    stats = IngestStats()
    options: dict[str, object] = {"flush_interval_s": 10.0, "idle_flushes": 2} | kwargs
    return StatsdAggregator(stats, **options), stats  # type: ignore[arg-type]


def all_points(agg: StatsdAggregator) -> list[tuple[str, float]]:
    """Sorted points of a flush; a name used with two types may give a series twice."""
    samples = agg.flush(NOW).samples
    assert bool(np.isfinite(samples.values).all())
    return sorted((str(s), v) for s, _, v in samples.points())


def flushed(agg: StatsdAggregator, now_ns: int = NOW) -> dict[str, float]:
    samples = agg.flush(now_ns).samples
    assert set(samples.ts_ns.tolist()) <= {now_ns}
    points = {str(s): v for s, _, v in samples.points()}
    assert len(points) == len(samples), "a series appeared twice in one flush"
    return points


def test_counter_sums_value_over_rate_and_reports_rate_per_second() -> None:
    agg, stats = make()
    agg.ingest(b"hits:1|c\nhits:2|c|@0.5\nhits:3|c|@0.1")
    assert flushed(agg) == pytest.approx({"hits.count": 35.0, "hits.rate": 3.5})
    assert stats.received["statsd"] == 3


def test_timer_statistics_follow_etsy() -> None:
    agg, _ = make(percentiles=(90, 50, 10, 99.9))
    agg.ingest(b"\n".join(b"t:%d|ms" % v for v in [7, 1, 10, 4, 2, 9, 3, 8, 5, 6]))
    got = flushed(agg)
    values = list(range(1, 11))
    mean = 5.5
    assert got == pytest.approx(
        {
            "t.count": 10,
            "t.sum": 55,
            "t.mean": mean,
            "t.lower": 1,
            "t.upper": 10,
            "t.median": 5.5,
            "t.std": math.sqrt(sum((v - mean) ** 2 for v in values) / 10),
            "t.p90": 9,  # the round(0.9 * 10) = 9th smallest
            "t.p50": 5,
            "t.p10": 1,
            "t.p99_9": 10,
        }
    )


def test_timer_percentile_covering_no_value_is_left_out_and_single_value_fills_all() -> None:
    agg, _ = make(percentiles=(10, 90))
    agg.ingest(b"a:4|ms\na:6|ms\nb:3|h|@0.5")
    got = flushed(agg)
    assert "a.p10" not in got  # round(0.1 * 2) == 0 values
    assert got["a.p90"] == 6
    assert got["a.median"] == 5
    assert got["b.count"] == 2.0  # one value at rate 0.5
    assert (got["b.p10"], got["b.p90"], got["b.median"], got["b.std"]) == (3, 3, 3, 0)


def test_histogram_and_distribution_aggregate_with_timers_of_the_same_name() -> None:
    agg, _ = make()
    agg.ingest(b"lat:1|ms\nlat:2|h\nlat:3|d")
    got = flushed(agg)
    assert (got["lat.count"], got["lat.sum"], got["lat.upper"]) == (3, 6, 3)


def test_gauge_deltas_apply_in_order_and_value_is_kept_across_flushes() -> None:
    agg, _ = make()
    agg.ingest(b"g:+4|g\ng:-1|g")  # a delta on a new gauge starts from 0
    assert flushed(agg) == {"g": 3.0}
    agg.ingest(b"g:10|g\ng:+2|g\ng:7|g\ng:-3|g")
    agg.ingest(b"g:+0.5|g")
    assert flushed(agg) == {"g": 4.5}
    assert flushed(agg) == {"g": 4.5}


def test_set_counts_unique_members_per_interval() -> None:
    agg, _ = make()
    agg.ingest(b"u:alice|s\nu:bob|s\nu:alice|s\nu:7|s|@0.1")
    assert flushed(agg) == {"u.count": 3.0}
    agg.ingest(b"u:carol|s")
    assert flushed(agg) == {"u.count": 1.0}


def test_tags_become_series_tags_and_split_series() -> None:
    agg, _ = make()
    agg.ingest(b"r:1|c|#host:a,env:prod\nr:2|c|#env:prod,host:a\nr:5|c|#host:b,canary")
    got = flushed(agg)
    assert got["r.count{env=prod,host=a}"] == 3
    assert got["r.count{canary=,host=b}"] == 5


def test_idle_metrics_report_zero_then_stop_and_gauges_repeat_then_stop() -> None:
    agg, _ = make(idle_flushes=2)
    agg.ingest(b"c:1|c\nt:5|ms\ns:x|s\ng:9|g")
    assert len(flushed(agg)) == 2 + 10 + 1 + 1
    idle = {"c.count": 0.0, "c.rate": 0.0, "t.count": 0.0, "s.count": 0.0, "g": 9.0}
    assert flushed(agg) == idle
    assert flushed(agg) == idle
    assert flushed(agg) == {}
    agg.ingest(b"g:+1|g\nc:2|c")  # expired: a gauge delta starts again from 0
    assert flushed(agg) == {"g": 1.0, "c.count": 2.0, "c.rate": 0.2}


def test_zero_idle_flushes_drops_idle_metrics_at_once() -> None:
    agg, _ = make(idle_flushes=0)
    agg.ingest(b"c:1|c\ng:1|g")
    assert len(flushed(agg)) == 3
    assert flushed(agg) == {}


def test_bad_lines_are_counted_by_reason_and_good_lines_of_the_packet_kept() -> None:
    agg, stats = make()
    agg.ingest(
        b"a:1|c\n" + b"\n".join(b"\n".join(v) for v in BAD_STATSD_LINES.values()) + b"\na:2|c"
    )
    assert flushed(agg) == {"a.count": 3.0, "a.rate": 0.3}
    assert stats.received["statsd"] == 2
    assert {r: n for (_, r), n in stats.dropped.items()} == {
        r: len(v) for r, v in BAD_STATSD_LINES.items()
    }


def test_non_finite_and_garbage_bytes_never_reach_the_flush() -> None:
    agg, stats = make()
    agg.ingest(b"a:nan|c\na:inf|g\na:1e400|ms\n\xff\xfe\x00\n\n\r\n" + b"z" * 70_000)
    agg.ingest(b"")
    assert flushed(agg) == {}
    assert stats.received["statsd"] == 0
    assert {r: n for (_, r), n in stats.dropped.items()} == {
        "bad_value": 2,
        "non_finite": 1,
        "bad_format": 2,
    }


def test_a_bad_line_in_a_big_batch_leaves_the_rest_counted() -> None:
    agg, stats = make()
    lines = [b"k%d:1|c" % (i % 50) for i in range(5000)]
    lines[2500] = b"k1:oops|c"
    agg.ingest(b"\n".join(lines))
    got = flushed(agg)
    assert sum(v for k, v in got.items() if k.endswith(".count")) == 4999
    assert stats.received["statsd"] == 4999
    assert stats.dropped[("statsd", "bad_value")] == 1


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="percentiles"):
        make(percentiles=(0,))
    with pytest.raises(ValueError, match="flush_interval_s"):
        make(flush_interval_s=0)


def test_many_series_expire_and_new_ones_still_land_right() -> None:
    agg, _ = make(idle_flushes=0)
    agg.ingest(b"\n".join(b"old%d:1|c" % i for i in range(300)) + b"\nkeep:1|g")
    flushed(agg)
    agg.ingest(b"keep:+1|g\nnew:3|c")
    assert flushed(agg) == {"keep": 2.0, "new.count": 3.0, "new.rate": 0.3}


chunks = st.lists(st.one_of(statsd_hostile_lines, statsd_lines().map(lambda c: c[0])), max_size=60)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(chunks.map(b"\n".join), min_size=1, max_size=4), st.booleans())
def test_fast_path_and_exact_path_agree(batches: list[bytes], flush_between: bool) -> None:
    fast, fast_stats = make()
    exact, exact_stats = make()
    fast_out, exact_out = [], []
    for data in batches:
        fast.ingest(data)
        exact.ingest_exact(data)
        if flush_between:
            fast_out.append(all_points(fast))
            exact_out.append(all_points(exact))
    fast_out.append(all_points(fast))
    exact_out.append(all_points(exact))
    assert fast_out == exact_out
    assert fast_stats == exact_stats


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(st.lists(statsd_lines(), min_size=1, max_size=40))
def test_valid_lines_are_all_received(cases: list[tuple[bytes, dict[str, object]]]) -> None:
    agg, stats = make()
    agg.ingest(b"\n".join(line for line, _ in cases))
    got = agg.flush(NOW).samples
    assert stats.received["statsd"] == len(cases)
    assert not stats.dropped
    names = {s.metric for s in got.series}
    for _, expected in cases:
        series = expected["series"]
        assert isinstance(series, Series)
        assert series.metric in names or series.metric + ".count" in names


# Lines that look like `name:value|suffix` but bend each part: several `:` and `|`, number
# texts that float() reads and StatsD does not (or overflow), set members, empty values.
_BENT_NAMES = [b"a", b"a|b", b"x y", b"a:b", b"", b"|"]
_BENT_TYPES = [b"|c", b"|g", b"|ms", b"|s", b"|", b"|x"]
_BENT_ENDS = [b"", b"|@0.5", b"|#k:v", b":2|c", b"|#k:1|c", b"\r"]
_BENT_VALUES = [b"1", b"-1", b"+2", b"0.5", b".5", b"5.", b"1e2", b"-0", b"1e999", b"-1e999"]
_BENT_VALUES += [b"1_0", b" 1", b"1 ", b"nan", b"inf", b"e", b".", b"+-1", b"", b"u", b"1\r"]
_BENT_VALUES += [b"123456789012345678", b"0x1"]
_bent_lines = st.builds(
    lambda n, v, t, end: b"%s:%s%s%s" % (n, v, t, end),
    *map(st.sampled_from, (_BENT_NAMES, _BENT_VALUES, _BENT_TYPES, _BENT_ENDS)),
)
# Short chunks: the fast path refuses a whole chunk for one line it cannot take.
_bent_chunks = st.lists(_bent_lines, min_size=1, max_size=3).map(b"\n".join)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(_bent_chunks, min_size=1, max_size=6))
def test_fast_path_and_exact_path_agree_on_bent_lines(batches: list[bytes]) -> None:
    fast, fast_stats = make()
    exact, exact_stats = make()
    # Every key first arrives with a plain value, alone, so the fast path knows it.
    for name, kind, end in itertools.product(_BENT_NAMES, _BENT_TYPES, _BENT_ENDS):
        fast.ingest(b"%s:1%s%s" % (name, kind, end))
        exact.ingest_exact(b"%s:1%s%s" % (name, kind, end))
    for data in batches:
        fast.ingest(data)
        exact.ingest_exact(data)
    assert all_points(fast) == all_points(exact)
    assert fast_stats == exact_stats


def test_values_past_the_cache_bound_are_still_read_right() -> None:
    agg, stats = make()
    lines = [b"t:%d.5|ms" % i for i in range(120_000)] + [b"g:-1|g", b"g:5|g", b"g:+2|g"]
    agg.ingest(b"\n".join(lines[:60_000]))
    agg.ingest(b"\n".join(lines[60_000:]))
    got = flushed(agg)
    assert got["t.count"] == 120_000
    assert got["t.sum"] == sum(i + 0.5 for i in range(120_000))
    assert got["g"] == 7.0
    assert stats.received["statsd"] == 120_003
