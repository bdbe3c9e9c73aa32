"""The vectorised sketch routines against the straightforward computations they replace: running
sums (`storage.sketch_sums`) against `np.cumsum`, packed sketches (`storage.sketch_packs`)
against their rows, and quantiles of packed sketches, alone or merged into groups
(`storage.sketch_quantiles`), bit for bit against `exact_quantiles` of the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from storage import sketches
from storage.records import Series, Sketches
from storage.sketch_packs import PackedSketches
from storage.sketch_quantiles import merged_quantiles, sketch_quantiles
from storage.sketch_sums import prefix_at, search_running, whole_counts
from tests.storage.sketch_cases import any_value, scales, weighted

QS = st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999, 1.0]), st.floats(0.0, 1.0))
CODE_TYPES: st.SearchStrategy[type[np.integer[Any]]] = st.sampled_from(
    [np.uint8, np.uint16, np.uint32, np.int64]
)


@st.composite
def whole_values(draw: st.DrawFn) -> NDArray[np.generic]:
    """Bucket counts as a block stores them: unsigned codes, int64, or whole float64 (zeros
    among them: a histogram may send empty buckets)."""
    if draw(st.booleans()):
        codes = draw(CODE_TYPES)
        top = min(int(np.iinfo(codes).max), 2**40)
        whole = st.one_of(st.integers(0, 3), st.integers(0, top))
        return draw(hnp.arrays(codes, st.integers(0, 200), elements=whole))
    floats = st.one_of(st.integers(0, 3), st.integers(0, 2**40)).map(float)
    return draw(hnp.arrays(np.float64, st.integers(0, 200), elements=floats))


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(whole_values(), st.data())
def test_a_search_of_block_sums_finds_what_a_running_sum_finds(
    values: NDArray[np.generic], data: st.DataObject
) -> None:
    running = np.cumsum(values, dtype=np.float64)
    total = float(running[-1]) if len(values) else 0.0
    near = st.one_of(
        st.floats(-2.0, total + 2.0),
        st.sampled_from(running.tolist() or [0.0]),
        st.integers(-1, int(total) + 1).map(float),
    )
    targets = np.sort(np.array(data.draw(st.lists(near, max_size=40)), np.float64))
    want = np.searchsorted(running, targets, side="right")
    assert search_running(values, targets).tolist() == want.tolist()


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(whole_values(), st.data())
def test_running_sums_at_sorted_positions_are_the_running_sum(
    values: NDArray[np.generic], data: st.DataObject
) -> None:
    positions = st.integers(-1, len(values) - 1)
    at = np.sort(np.array(data.draw(st.lists(positions, max_size=40)), np.int64))
    for dtype in (np.int64, np.float64):
        running = np.concatenate([[0], np.cumsum(values, dtype=dtype)])
        assert prefix_at(values, at, dtype).tolist() == running[at + 1].tolist()


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 30), elements=st.floats(-4, 2**54)))
def test_whole_counts_are_whole_non_negative_and_exact_in_sum(counts: NDArray[np.float64]) -> None:
    want = not len(counts) or (
        bool((counts >= 0).all())
        and bool((counts == np.floor(counts)).all())
        and float(np.cumsum(counts)[-1]) < 2.0**53
    )
    assert whole_counts(counts) == want


def test_wide_codes_are_checked_for_a_sum_beyond_exact_floats() -> None:
    assert whole_counts(np.full(3, 2**32 - 1, np.uint32))
    assert not whole_counts(np.full(2**22, 2**32 - 1, np.uint32))


LATENCIES = st.one_of(st.just(0.0), st.floats(1e-3, 1e5), st.integers(1, 10**4).map(float))


@st.composite
def sketch_rows(
    draw: st.DrawFn, same_scale: bool = False, values: st.SearchStrategy[float] = any_value
) -> Sketches:
    """Sketches of a few series at a few times, their rows in (series, ts) order; some of them
    with no buckets (a histogram with nothing in it) or empty buckets."""
    scale = draw(scales)
    parts = draw(st.lists(weighted(values), min_size=1, max_size=8))
    rows = []
    for number, (drawn, weights) in enumerate(parts):
        v = np.asarray(drawn, np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # huge values sum to inf (or nan)
            _, keys, counts = sketches.build(
                np.zeros(len(v), np.int64),
                v,
                np.asarray(weights, np.float64),
                scale if same_scale else draw(scales),
            )
        if draw(st.booleans()):  # a bucket left empty, or no bucket at all
            counts[4:] = 0.0 if draw(st.booleans()) else counts[4:]
            keys, counts = (keys[:4], counts[:4]) if draw(st.booleans()) else (keys, counts)
        rows.append((number % 3, number // 3, keys, counts))
    rows.sort(key=lambda r: (r[0], r[1]))
    lengths = [len(r[2]) for r in rows]
    series = tuple(Series.of("api.latency", {"host": h}) for h in "abc")
    return Sketches(
        series,
        np.repeat(np.array([r[0] for r in rows], np.int32), lengths),
        np.repeat(np.array([r[1] for r in rows], np.int64), lengths),
        np.concatenate([r[2] for r in rows]),
        np.concatenate([r[3] for r in rows]),
    )


def assert_same(got: NDArray[np.float64], want: NDArray[np.float64]) -> None:
    """Equal bit for bit (NaN where NaN)."""
    assert got.view(np.uint64).tolist() == want.view(np.uint64).tolist()


def assert_same_rows(got: Sketches, want: Sketches) -> None:
    assert tuple(got.series) == tuple(want.series)
    for name in ("index", "ts_ns", "keys"):
        assert getattr(got, name).tolist() == getattr(want, name).tolist()
    assert_same(got.values, want.values)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(sketch_rows(), st.data())
def test_packed_sketches_give_their_rows_back(rows: Sketches, data: st.DataObject) -> None:
    packed = PackedSketches.of(rows)
    assert_same_rows(packed.rows(), rows)
    assert packed.keys().tolist() == rows.keys[sketches.is_bucket(rows.keys)].tolist()
    kept = np.array(data.draw(st.lists(st.booleans(), min_size=len(packed), max_size=len(packed))))
    taken, rest = packed.take(kept), packed.take(~kept)
    assert_same_rows(PackedSketches.concat([rest, taken]).rows(), rows)


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(sketch_rows(), QS, st.permutations(range(8)))
def test_quantiles_of_packed_sketches_are_those_of_their_rows(
    rows: Sketches, q: float, order: list[int]
) -> None:
    assume(bool(sketches.is_bucket(rows.keys).any()))  # `exact_quantiles` wants a bucket
    packed = PackedSketches.of(rows)
    # The sketches in no particular order, as a read packs them.
    shuffled = PackedSketches.concat([packed.take(np.arange(len(packed)) % 8 == i) for i in order])
    with np.errstate(invalid="ignore"):  # an empty sketch there reads a neighbour's bucket
        _, want, exact = sketches.exact_quantiles(np.arange(len(rows)), rows.keys, rows.values, q)
    assert exact
    got = sketch_quantiles(shuffled, q)
    back = np.lexsort((shuffled.ts_ns, shuffled.index))  # the rows' order
    assert_same(got[back], want)


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(st.one_of(sketch_rows(True), sketch_rows(True, LATENCIES)), QS, st.integers(1, 4), st.data())
def test_quantiles_merged_in_a_count_table_are_those_of_the_merged_rows(
    rows: Sketches, q: float, groups: int, data: st.DataObject
) -> None:
    assume(bool(sketches.is_bucket(rows.keys).any()))
    packed = PackedSketches.of(rows)
    label = np.array(
        data.draw(st.lists(st.integers(0, groups - 1), min_size=len(packed), max_size=len(packed)))
    )
    groups = int(label.max()) + 1
    used = np.isin(np.arange(groups), label)
    starts = np.flatnonzero(rows.keys == sketches.SCALE_KEY)
    row_label = np.repeat(label, np.diff(np.append(starts, len(rows))))
    merged = sketches.combine(row_label, rows.keys, rows.values)
    with np.errstate(invalid="ignore"):
        _, want, _ = sketches.exact_quantiles(*merged, q)
    got = merged_quantiles(packed, label, groups, q, data.draw(st.integers(1, 64)))
    if got is None:  # keys too far apart for a table (zeros, negative and positive values)
        keys = packed.keys()
        assert len(keys)
        assert int(keys.max()) - int(keys.min()) > len(keys)
        return
    assert_same(got[used], want)
    assert np.isnan(got[~used]).all()


def test_zero_latencies_merge_in_the_table() -> None:
    rng = np.random.default_rng(3)
    values = np.where(rng.random(400) < 0.2, 0.0, rng.lognormal(2.0, 1.0, 400).round(0))
    group = np.arange(400) % 8
    _, keys, counts = sketches.build(group, values, np.ones(400))
    starts = np.flatnonzero(keys == sketches.SCALE_KEY)
    lengths = np.diff(np.append(starts, len(keys)))
    rows = Sketches(
        (Series.of("api.latency", {}),),
        np.zeros(len(keys), np.int32),
        np.repeat(np.arange(8, dtype=np.int64), lengths),
        keys,
        counts,
    )
    label = np.arange(8) % 3
    for q in (0.1, 0.5, 0.99):
        _, want, _ = sketches.exact_quantiles(
            *sketches.combine(np.repeat(label, lengths), keys, counts), q
        )
        got = merged_quantiles(PackedSketches.of(rows), label, 3, q)
        assert got is not None
        assert_same(got, want)


def test_sketches_of_different_scales_are_not_merged_in_a_table() -> None:
    values = np.array([1.0, 2.0, 3.0])
    parts = [sketches.build(np.zeros(3, np.int64), values, np.ones(3), s)[1:] for s in (6, 5)]
    lengths = [len(k) for k, _ in parts]
    rows = Sketches(
        (Series.of("api.latency", {}),),
        np.zeros(sum(lengths), np.int32),
        np.repeat(np.array([0, 1], np.int64), lengths),
        np.concatenate([k for k, _ in parts]),
        np.concatenate([v for _, v in parts]),
    )
    assert merged_quantiles(PackedSketches.of(rows), np.zeros(2, np.int64), 1, 0.5) is None


@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_no_sketches_have_no_quantiles(q: float) -> None:
    empty = PackedSketches.empty()
    assert sketch_quantiles(empty, q).tolist() == []
    assert merged_quantiles(empty, np.empty(0, np.int64), 0, q) is not None
