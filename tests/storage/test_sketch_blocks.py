"""Compact sketch blocks: every row comes back bit for bit (fractional, huge and escaped
counts, negative and zero buckets, keys far apart), a selection gives what `select_sorted`
gives on the plain rows, a real store writes its sketch tables compact (its scalar tables
plain) and reads them back after a reopen and from a follower, and a StatsD flush sketch takes
under 1 KiB on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from storage import blocks, sketch_blocks, sketches
from storage.columns import SKETCH_WIDTH, Columns, merge, select_sorted
from storage.embedded_view import sketch_table
from storage.records import NS_PER_S, Samples, Series, Sketches
from storage.sketch_blocks import SketchRun
from tests.storage.conftest import ReaderFactory, StoreFactory

HEADER_KEYS = np.asarray(sketches.HEADER_KEYS, np.float64)
BUCKET_BASE = 2**40
ESCAPES = (255.0, 65535.0, 2.0**32 - 1, 2.0**53, 2.0**53 + 2, 2.0**64, 1e300)

any_float = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
headers = st.tuples(
    st.one_of(st.integers(-10, 20).map(float), any_float), any_float, any_float, any_float
)
counts = st.one_of(
    st.integers(1, 12).map(float),  # a flush's
    st.integers(0, 2**40).map(float),  # a rollup's
    st.sampled_from((0.0, -0.0, 0.5, 2.5, 10 / 3, 1 / 0.3, *ESCAPES)),  # sample rates, escapes
    any_float,
)
bucket_index = st.one_of(st.integers(-5, 400), st.integers(-(2**31), 2**31))
bucket_keys = st.one_of(
    bucket_index.map(lambda i: BUCKET_BASE + i),
    bucket_index.map(lambda i: -(BUCKET_BASE + i)),
    st.just(0),
    st.integers(sketches.MAX_KEY + 1, 2**53 - 1),  # any integer key exact as a float64
)
sketch_ids = st.one_of(st.integers(0, 12), st.integers(0, 2**32 - 1))
times = st.one_of(st.integers(0, 20).map(lambda t: t * NS_PER_S), st.integers(-(2**63), 2**63 - 1))


@st.composite
def sketch_runs(draw: st.DrawFn, max_sketches: int = 30) -> Columns:
    """Rows of sketches as a merge leaves them: sorted by (sid, ts), one whole sketch each, its
    four header rows then its bucket rows by increasing key."""
    keys = sorted(draw(st.sets(st.tuples(sketch_ids, times), min_size=1, max_size=max_sketches)))
    sid: list[int] = []
    ts: list[int] = []
    key: list[float] = []
    value: list[float] = []
    for s, t in keys:
        buckets = sorted(draw(st.sets(bucket_keys, max_size=30)))
        head = draw(headers)
        sid += [s] * (4 + len(buckets))
        ts += [t] * (4 + len(buckets))
        key += [*HEADER_KEYS.tolist(), *(float(k) for k in buckets)]
        value += [*head, *draw(st.lists(counts, min_size=len(buckets), max_size=len(buckets)))]
    return Columns(
        np.asarray(sid, np.uint32),
        np.asarray(ts, np.int64),
        (np.asarray(key, np.float64), np.asarray(value, np.float64)),
    )


def compact(rows: Columns) -> SketchRun:
    arrays = sketch_blocks.encode(rows)
    assert arrays is not None
    assert set(arrays) == set(sketch_blocks.FILES)
    return SketchRun(arrays)


def assert_same(got: Columns, want: Columns) -> None:
    """The same rows, order, dtypes and values bit for bit (NaN payloads and -0.0 included)."""
    assert len(got) == len(want)
    assert got.width == want.width == SKETCH_WIDTH
    pairs: list[tuple[NDArray[Any], NDArray[Any]]] = [(got.sid, want.sid), (got.ts, want.ts)]
    for a, b in [*pairs, *zip(got.cols, want.cols, strict=True)]:
        assert a.dtype == b.dtype
        assert np.array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8))


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(sketch_runs())
def test_every_row_comes_back_bit_for_bit(rows: Columns) -> None:
    run = compact(rows)
    assert len(run) == len(rows)
    assert_same(run.decoded(), rows)
    everything = (-(2**63), 2**63 - 1)
    assert_same(run.select(None, *everything), select_sorted(rows, None, *everything))
    keys = run.keys()
    first = np.flatnonzero(rows.cols[0] == HEADER_KEYS[0])
    assert np.array_equal(keys.sid, rows.sid[first])
    assert np.array_equal(keys.ts, rows.ts[first])


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    sketch_runs(),
    st.lists(sketch_ids, max_size=40).map(lambda s: np.unique(np.asarray(s, np.uint32))),
    st.none() | st.lists(st.integers(0, 10**6), max_size=40),
    times,
    times,
)
def test_a_selection_is_the_plain_rows_selection(
    rows: Columns, sids: Any, present: list[int] | None, start: int, end: int
) -> None:
    """Random series (some of the run's, some absent, more or fewer than the few-slices cut
    of `select_sorted`) over random time ranges, or every series."""
    if present is not None:  # pick stored series too, not only ids drawn at random
        sids = np.unique(
            np.concatenate([sids, rows.sid[np.asarray(present, np.int64) % len(rows)]])
        )
    run = compact(rows)
    for lo, hi in ((start, end), (min(start, end), max(start, end)), (-(2**63), end)):
        assert_same(run.select(sids, lo, hi), select_sorted(rows, sids, lo, hi))
        assert_same(run.select(None, lo, hi), select_sorted(rows, None, lo, hi))


def flush_rows(n: int, sigma: float, count: int, weight: float = 1.0) -> Columns:
    """`count` StatsD flush sketches of n log-normal latencies (median 40 ms, 3 decimals), one
    per series, each value counted `weight` times (a sample rate of 1 / weight)."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.lognormal(np.log(40), sigma, n).round(3) for _ in range(count)])
    group = np.repeat(np.arange(count), n)
    label, keys, out = sketches.build(group, values, np.full(len(values), weight))
    ts = np.full(len(label), 1_700_000_000 * NS_PER_S, np.int64)
    return Columns(label.astype(np.uint32), ts, (keys.astype(np.float64), out))


def test_the_bucket_columns_take_the_narrowest_codes_and_escape_the_rest() -> None:
    flush = compact_arrays(flush_rows(100, 0.6, 10))
    assert flush["key_delta"].dtype == flush["count"].dtype == np.uint8
    assert flush["scale"].dtype == np.int8
    assert not len(flush["count_overflow"])
    rows = flush_rows(1000, 0.6, 20)
    counts = rows.cols[1].copy()
    bucket = np.flatnonzero(rows.cols[0] > sketches.MAX_KEY)
    counts[bucket[::50]] = [2.5, 1e12, -0.0, 255.0, *([3.25] * (len(bucket[::50]) - 4))]
    escaped = compact_arrays(Columns(rows.sid, rows.ts, (rows.cols[0], counts)))
    assert escaped["count"].dtype == np.uint8
    assert np.array_equal(escaped["count_rows"], np.arange(0, len(bucket), 50))
    assert_same(SketchRun(escaped).decoded(), Columns(rows.sid, rows.ts, (rows.cols[0], counts)))
    hourly = compact_arrays(flush_rows(1000, 0.6, 20, weight=1000.0))  # counts in thousands
    assert hourly["count"].dtype == np.uint16
    sampled = compact_arrays(flush_rows(100, 0.6, 10, weight=1 / 0.3))  # fractional counts
    assert sampled["count"].dtype == np.float64
    assert not len(sampled["count_rows"])


def compact_arrays(rows: Columns) -> dict[str, Any]:
    arrays = sketch_blocks.encode(rows)
    assert arrays is not None
    return arrays


def test_rows_of_another_shape_keep_a_plain_block(tmp_path: Path) -> None:
    """A (sid, ts) that does not start with the header keys, or a key that is not an exact
    integer, is not encoded: its block is written plain and reads back the same."""
    rows = flush_rows(100, 0.3, 3)
    fractional_key = rows.cols[0].copy()
    fractional_key[-1] += 0.5
    no_header = rows.take(np.flatnonzero(rows.cols[0] != HEADER_KEYS[1]))
    for odd in (Columns(rows.sid, rows.ts, (fractional_key, rows.cols[1])), no_header):
        assert sketch_blocks.encode(odd) is None
        block = blocks.write_block(tmp_path, "sketch.raw", 1, odd)
        assert not sketch_blocks.is_compact(blocks.block_dir(tmp_path, "sketch.raw", 1))
        assert_same(block.select(None, 0, 2**62), odd)
        blocks.remove_block(tmp_path, "sketch.raw", 1)


def test_a_written_block_is_memmapped_and_selects_what_the_plain_rows_give(
    tmp_path: Path,
) -> None:
    rows = merge([flush_rows(100, 0.6, 3000)], SKETCH_WIDTH)
    rows = Columns(rows.sid % 1000, rows.ts + rows.sid // 1000 * NS_PER_S, rows.cols)
    rows = merge([rows], SKETCH_WIDTH)  # 1000 series, 3 flushes each
    block = blocks.write_block(tmp_path, "sketch.raw", 7, rows)
    info = block.info
    assert (info.rows, info.min_ts, info.max_ts) == (len(rows), int(rows.ts[0]), int(rows.ts[-1]))
    reopened = blocks.load_block(tmp_path, "sketch.raw", info, SKETCH_WIDTH)
    assert isinstance(reopened.rows, SketchRun)
    assert_same(reopened.decoded(), rows)
    rng = np.random.default_rng(1)
    for _ in range(20):
        sids = np.unique(rng.integers(0, 1100, rng.integers(1, 300))).astype(np.uint32)
        start = int(rows.ts[0]) + int(rng.integers(-1, 3)) * NS_PER_S
        end = start + int(rng.integers(0, 4)) * NS_PER_S
        assert_same(reopened.select(sids, start, end), select_sorted(rows, sids, start, end))


@pytest.mark.parametrize("sigma", [0.3, 0.6])
@pytest.mark.parametrize("n", [100, 1000])
def test_a_flush_sketch_takes_under_a_kibibyte_on_disk(
    tmp_path: Path, n: int, sigma: float
) -> None:
    count = 200  # sketches of one checkpoint: 200 timers
    blocks.write_block(tmp_path, "sketch.raw", 1, flush_rows(n, sigma, count))
    files = list(blocks.block_dir(tmp_path, "sketch.raw", 1).iterdir())
    assert len(files) == len(sketch_blocks.FILES)
    assert sum(f.stat().st_size for f in files) / count < 1024


S = NS_PER_S
NOW = 1_700_000_000 * S
SERIES = tuple(Series.of("api.latency", {"host": f"h{i:02d}"}) for i in range(40))


def flushes(first: int, count: int) -> Sketches:
    """A flush sketch of each series every 10 s, timers sampled at 0.3 on even hosts (counts
    of 3.33...) and a few huge latencies, values kept as they are (no rounding)."""
    rng = np.random.default_rng(first)
    per_flush = len(SERIES) * 50
    values = rng.lognormal(np.log(40), 0.6, count * per_flush)
    values[::997] *= 1e9
    group = np.arange(len(values)) // 50
    weights = np.where(group % len(SERIES) % 2 == 0, 1 / 0.3, 1.0)
    label, keys, out = sketches.build(group, values, weights)
    ts = NOW + (first + label // len(SERIES)) * 10 * S
    return Sketches(SERIES, (label % len(SERIES)).astype(np.int32), ts, keys, out)


def sorted_rows(batch: Sketches) -> list[tuple[str, int, int, float]]:
    rows = zip(
        (str(batch.series[i]) for i in batch.index.tolist()),
        batch.ts_ns.tolist(),
        batch.keys.tolist(),
        batch.values.tolist(),
        strict=True,
    )
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def test_a_store_writes_sketch_blocks_compact_and_reads_them_back_after_reopening(
    tmp_path: Path, open_store: StoreFactory, open_reader: ReaderFactory
) -> None:
    """Four checkpoints (compacted into one block), a reopen, and a follower: each reads the
    sketches written, and a few series over part of the time only those."""
    data = tmp_path / "data"
    store = open_store(data)
    written = []
    for i in range(4):
        batch = flushes(3 * i, 3)
        samples = Samples(SERIES[:1], np.zeros(1, np.int32), np.full(1, NOW + i * S), np.ones(1))
        store.write(samples, batch)
        written.append(batch)
        store.checkpoint()
    want = sorted_rows(Sketches.concat(written))
    table = data / "blocks" / sketch_table("raw")
    (merged,) = table.iterdir()  # the four blocks compacted, compact again
    assert sketch_blocks.is_compact(merged)
    assert all((b / "c0.npy").is_file() for b in (data / "blocks" / "raw").iterdir())
    few = [SERIES[3], SERIES[10], SERIES[11]]
    part = (NOW + 20 * S, NOW + 70 * S)
    want_few = [r for r in want if r[0] in {str(s) for s in few} and part[0] <= r[1] < part[1]]
    assert want_few
    reader = open_reader(data)
    for view in (store, reader):
        assert sorted_rows(view.read_sketches("raw", None, 0, 2**62)) == want
        assert sorted_rows(view.read_sketches("raw", few, *part)) == want_few
    store.close()
    reopened = open_store(data)
    reader.refresh()
    for view in (reopened, reader):
        assert sorted_rows(view.read_sketches("raw", None, 0, 2**62)) == want
        assert sorted_rows(view.read_sketches("raw", few, *part)) == want_few
