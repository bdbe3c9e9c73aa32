"""Rollups: hand-computed buckets, cascades, merges, and their invariants under Hypothesis."""

from __future__ import annotations

import itertools
from dataclasses import astuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aggregator.rollups import (
    AGGREGATES,
    RowParts,
    aggregate,
    cascade,
    combine,
    floor_to,
    regroup,
    rollup,
)
from storage.records import NS_PER_S, Rollups, Samples, Series

MIN = 60 * NS_PER_S
CPU_A = Series.of("cpu", {"host": "a"})
CPU_B = Series.of("cpu", {"host": "b"})


def rows(r: Rollups) -> list[tuple[str, int, float, float, float, float, float]]:
    """Rows as plain tuples, easy to compare with hand-computed expectations."""
    return [
        (str(r.series[i]), int(b), mn, mx, s, c, last)
        for i, b, mn, mx, s, c, last in zip(
            r.index.tolist(),
            r.bucket_ns.tolist(),
            r.min.tolist(),
            r.max.tolist(),
            r.sum.tolist(),
            r.count.tolist(),
            r.last.tolist(),
            strict=True,
        )
    ]


def ten_second_points(series: Series, values: list[float], start_s: int = 0) -> Samples:
    return Samples.from_points(
        (series, (start_s + 10 * i) * NS_PER_S, v) for i, v in enumerate(values)
    )


def test_rollup_of_ten_second_points_into_minutes():
    samples = ten_second_points(CPU_A, [float(v) for v in range(1, 13)])
    assert rows(rollup(samples, MIN)) == [
        ("cpu{host=a}", 0, 1.0, 6.0, 21.0, 6.0, 6.0),
        ("cpu{host=a}", MIN, 7.0, 12.0, 57.0, 6.0, 12.0),
    ]


def test_rollup_takes_last_by_time_not_by_input_order():
    samples = Samples.from_points(
        [(CPU_A, 50 * NS_PER_S, 5.0), (CPU_B, 0, 9.0), (CPU_A, 10 * NS_PER_S, 1.0)]
    )
    assert rows(rollup(samples, MIN)) == [
        ("cpu{host=a}", 0, 1.0, 5.0, 6.0, 2.0, 5.0),
        ("cpu{host=b}", 0, 9.0, 9.0, 9.0, 1.0, 9.0),
    ]


def test_rollup_of_nothing_keeps_the_series():
    empty = Samples((CPU_A,), np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0))
    result = rollup(empty, MIN)
    assert len(result) == 0
    assert tuple(result.series) == (CPU_A,)


def test_floor_to_rounds_down_before_the_epoch_too():
    ts = np.array([-1, 0, 59 * NS_PER_S, MIN, -MIN - 1], np.int64)
    assert floor_to(ts, MIN).tolist() == [-MIN, 0, 0, MIN, -2 * MIN]


def test_cascade_minutes_into_ten_minutes():
    minutes = rollup(ten_second_points(CPU_A, [float(v) for v in range(120)]), MIN)
    assert len(minutes) == 20
    assert rows(cascade(minutes, 10 * MIN)) == [
        ("cpu{host=a}", 0, 0.0, 59.0, float(sum(range(60))), 60.0, 59.0),
        ("cpu{host=a}", 10 * MIN, 60.0, 119.0, float(sum(range(60, 120))), 60.0, 119.0),
    ]


def test_cascade_takes_last_from_the_latest_bucket_whatever_the_row_order():
    minutes = rollup(ten_second_points(CPU_A, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), MIN)
    reversed_rows = minutes.take(np.arange(len(minutes))[::-1])
    assert rows(cascade(reversed_rows, 10 * MIN)) == [("cpu{host=a}", 0, 1.0, 7.0, 28.0, 7.0, 7.0)]


def test_combine_merges_a_late_partial_row_into_its_bucket():
    on_time = rollup(ten_second_points(CPU_A, [4.0, 6.0], start_s=20), MIN)
    late = rollup(ten_second_points(CPU_A, [10.0]), MIN)
    merged = combine(Rollups.concat([on_time, late]))
    # The later row wins `last`: the scheduler writes late rows with the bucket's true last.
    assert rows(merged) == [("cpu{host=a}", 0, 4.0, 10.0, 20.0, 3.0, 10.0)]


def test_regroup_adds_series_into_groups():
    a = rollup(ten_second_points(CPU_A, [1.0, 3.0]), MIN)
    b = rollup(ten_second_points(CPU_B, [10.0, 20.0, 30.0]), MIN)
    both = Rollups.concat([a, b])
    total = Series.of("cpu")
    grouped = regroup(both, np.zeros(len(both.series), np.int32), (total,), MIN)
    assert rows(grouped) == [("cpu", 0, 1.0, 30.0, 64.0, 5.0, 30.0)]
    assert AGGREGATES["mean"](grouped).tolist() == [64.0 / 5.0]


def test_aggregates_read_the_right_field():
    r = rollup(ten_second_points(CPU_A, [2.0, 8.0, 5.0]), MIN)
    got = {name: fn(r).tolist() for name, fn in AGGREGATES.items()}
    assert got == {
        "mean": [5.0],
        "min": [2.0],
        "max": [8.0],
        "sum": [15.0],
        "count": [3.0],
        "last": [5.0],
    }


# Integral values keep float sums exact, so rollups can be compared with ==.
values = st.integers(-1000, 1000).map(float)
points = st.lists(st.tuples(st.integers(0, 2), st.integers(-5 * MIN, 5 * MIN), values), max_size=60)
widths = st.sampled_from([NS_PER_S, 10 * NS_PER_S, MIN, 7 * NS_PER_S])
SERIES = (CPU_A, CPU_B, Series.of("mem"))


def samples_of(pts: list[tuple[int, int, float]]) -> Samples:
    return Samples(
        SERIES,
        np.array([p[0] for p in pts], np.int32),
        np.array([p[1] for p in pts], np.int64),
        np.array([p[2] for p in pts], np.float64),
    )


@pytest.mark.slow
@given(points, widths)
def test_rollup_invariants(pts, width):
    samples = samples_of(pts)
    r = rollup(samples, width)
    mean = AGGREGATES["mean"](r)
    assert np.all(r.min <= mean + 1e-9)
    assert np.all(mean <= r.max + 1e-9)
    assert np.all((r.min <= r.last) & (r.last <= r.max))
    assert r.count.sum() == len(pts)
    assert r.sum.sum() == sum(p[2] for p in pts)
    assert np.all(np.mod(r.bucket_ns, width) == 0)
    # One row per (series, bucket), sorted.
    keys = list(zip(r.index.tolist(), r.bucket_ns.tolist(), strict=True))
    assert keys == sorted(set(keys))


@pytest.mark.slow
@given(points, widths)
def test_rollup_does_not_depend_on_input_order_when_timestamps_are_unique(pts, width):
    unique = list({(p[0], p[1]): p for p in pts}.values())
    shuffled = samples_of(unique)
    ordered = samples_of(sorted(unique))
    assert rows(rollup(shuffled, width)) == rows(rollup(ordered, width))


@pytest.mark.slow
@given(points, st.integers(-5 * MIN, 5 * MIN), widths)
def test_rollup_of_a_concatenation_equals_combine_of_the_parts(pts, split_ns, width):
    # The scheduler splits by time: earlier points, then later ones (so `last` must agree too).
    before = samples_of([p for p in pts if p[1] < split_ns])
    after = samples_of([p for p in pts if p[1] >= split_ns])
    whole = rollup(samples_of(pts), width)
    parts = combine(Rollups.concat([rollup(before, width), rollup(after, width)]))
    assert rows(parts) == rows(whole)


@pytest.mark.slow
@given(points, points)
def test_combine_of_any_split_keeps_min_max_sum_count(first, second):
    whole = rollup(samples_of(first + second), MIN)
    parts = combine(
        Rollups.concat([rollup(samples_of(first), MIN), rollup(samples_of(second), MIN)])
    )
    assert [r[:6] for r in rows(parts)] == [r[:6] for r in rows(whole)]


@pytest.mark.slow
@given(points)
def test_cascade_equals_a_direct_rollup_at_the_coarse_width(pts):
    samples = samples_of(sorted(pts, key=lambda p: p[1]))
    direct = rollup(samples, 10 * MIN)
    stepped = cascade(rollup(samples, MIN), 10 * MIN)
    assert [r[:6] for r in rows(stepped)] == [r[:6] for r in rows(direct)]
    unique = samples_of(sorted({(p[0], p[1]): p for p in pts}.values(), key=lambda p: p[1]))
    assert rows(cascade(rollup(unique, MIN), 10 * MIN)) == rows(rollup(unique, 10 * MIN))


def regroup_by_three_keys(r: Rollups, group: np.ndarray, width: int) -> list[np.ndarray]:
    """What `regroup` must give, sorted the plain way: every row by (group, bucket, own bucket)
    with lexsort, each column merged over the groups of equal (group, bucket)."""
    index, bucket = group[r.index], floor_to(r.bucket_ns, width)
    order = np.lexsort((r.bucket_ns, bucket, index))
    index, bucket = index[order], bucket[order]
    starts = np.flatnonzero(np.r_[True, (index[1:] != index[:-1]) | (bucket[1:] != bucket[:-1])])
    ends = np.append(starts[1:], len(index))
    return [
        index[starts],
        bucket[starts],
        np.minimum.reduceat(r.min[order], starts),
        np.maximum.reduceat(r.max[order], starts),
        np.add.reduceat(r.sum[order], starts),
        np.add.reduceat(r.count[order], starts),
        r.last[order][ends - 1],
    ]


def rollup_rows(times: st.SearchStrategy[int]) -> st.SearchStrategy[Rollups]:
    """Rows of three series in any order, twins included, with any floats (so that a sum in
    another order would show), and counts from 1 as a row has."""
    floats, counts = st.floats(-1e6, 1e6), st.integers(1, 100).map(float)
    return st.integers(1, 40).flatmap(
        lambda n: st.builds(
            lambda index, bucket, *cols: Rollups(SERIES, index, bucket, *cols),
            hnp.arrays(np.int32, n, elements=st.integers(0, 2)),
            hnp.arrays(np.int64, n, elements=times),
            *(hnp.arrays(np.float64, n, elements=e) for e in (floats, floats, floats, counts)),
            hnp.arrays(np.float64, n, elements=floats),
        )
    )


@pytest.mark.slow
@settings(max_examples=60)
@given(
    st.one_of(
        rollup_rows(st.integers(-5 * MIN, 5 * MIN).map(lambda t: t - t % NS_PER_S)),
        rollup_rows(st.integers(-(2**62), 2**62)),  # spans no single int64 key holds
    ),
    hnp.arrays(np.int32, 3, elements=st.integers(0, 1)),
    widths,
    st.sampled_from(sorted(AGGREGATES)),
)
def test_regroup_and_aggregate_give_the_rows_of_a_plain_sort_bit_for_bit(
    r: Rollups, group: np.ndarray, width: int, agg: str
) -> None:
    expected = regroup_by_three_keys(r, group, width)
    merged = regroup(r, group, (CPU_A, CPU_B), width)
    got: list[np.ndarray] = [merged.index, merged.bucket_ns, merged.min, merged.max, merged.sum]
    got += [merged.count, merged.last]
    assert [a.tobytes() for a in got] == [a.tobytes() for a in expected]
    index, bucket, values = aggregate(r, group, width, agg)
    assert index.tobytes() == merged.index.tobytes()
    assert bucket.tobytes() == merged.bucket_ns.tobytes()
    assert values.tobytes() == AGGREGATES[agg](merged).tobytes()


@settings(max_examples=60)
@given(
    rollup_rows(st.integers(-5 * MIN, 5 * MIN)),
    st.lists(st.integers(0, 40), max_size=3),
    st.permutations(range(3)),
    widths,
    st.sampled_from(sorted(AGGREGATES)),
)
def test_rows_in_parts_aggregate_as_the_rows_joined(
    r: Rollups, cuts: list[int], order: list[int], width: int, agg: str
) -> None:
    """Parts (some empty, their series in other orders) aggregate as `Rollups.concat` of them."""
    bounds = [0, *sorted(c for c in cuts if c <= len(r)), len(r)]
    parts = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        part = r.take(np.arange(lo, hi))
        if i % 2:  # the same rows, numbered over the series in another order
            renumber = np.argsort(order).astype(np.int32)
            part = Rollups(
                tuple(SERIES[k] for k in order), renumber[part.index], *astuple(part)[2:]
            )
        parts.append(part)
    joined, in_parts = Rollups.concat(parts), RowParts(parts)
    assert tuple(in_parts.series) == tuple(joined.series)
    group = np.array([1, 0, 1], np.int32)[: len(joined.series)]
    got = aggregate(in_parts, group, width, agg)
    expected = aggregate(joined, group, width, agg)
    assert [a.tobytes() for a in got] == [a.tobytes() for a in expected]
