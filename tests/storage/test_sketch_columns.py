"""Merging sketches against building them from the union of their values (at the coarsest
scale among them), in any order and grouping; sketch runs keeping the last sketch written of
each key whole, however the writes were split into runs; sketch records in the WAL."""

from __future__ import annotations

import itertools
import random
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import sketches
from storage.columns import (
    RAW_WIDTH,
    ROLLUP_WIDTH,
    SKETCH_WIDTH,
    Columns,
    add_sketches_into,
    merge,
    summarise_sketches,
)
from storage.errors import CorruptStoreError
from storage.records import RAW, FloatArray, IntArray, Series
from storage.wal import Record, decode, encode, read_records
from tests.storage.sketch_cases import EDGES, HUGE, build_one, scales, value_lists, weights

# Sums of these stay finite and exact (integers well below 2^53, and a few powers of two)
exact_values = st.one_of(st.integers(-(10**6), 10**6).map(float), st.sampled_from([0.5, -0.25]))
# ... and of these finite, with rounding
wide_values = st.one_of(
    st.floats(-1e300, 1e300), st.sampled_from([v for v in EDGES if abs(v) < HUGE])
)


@st.composite
def parts(
    draw: st.DrawFn, values: st.SearchStrategy[float], mixed_scales: bool = True
) -> list[tuple[int, int, list[float], list[int], int]]:
    """Sketches to merge: (major, minor, values, weights, scale) each; a few share a key."""
    scale = draw(scales)
    out = []
    for _ in range(draw(st.integers(1, 7))):
        drawn = draw(value_lists(values, max_size=10))
        w = draw(st.lists(weights, min_size=len(drawn), max_size=len(drawn)))
        own = draw(scales) if mixed_scales else scale
        out.append((draw(st.integers(0, 1)), draw(st.integers(0, 2)), drawn, w, own))
    return out


Part = tuple[int, int, list[float], list[int], int]
Merged = tuple[IntArray, IntArray, IntArray, FloatArray]


def rows_of_parts(chosen: list[Part]) -> Merged:
    """The parts' sketches, each built on its own, one after another."""
    built = [(p[0], p[1], *build_one(p[2], p[3], p[4])) for p in chosen]
    return (
        np.concatenate([np.full(len(k), a, np.int64) for a, _, k, _ in built]),
        np.concatenate([np.full(len(k), b, np.int64) for _, b, k, _ in built]),
        np.concatenate([k for _, _, k, _ in built]),
        np.concatenate([v for _, _, _, v in built]),
    )


def merged(chosen: list[Part]) -> Merged:
    return sketches.merge_by(*rows_of_parts(chosen))


def sketch_at(rows: Merged, major: int, minor: int) -> tuple[IntArray, FloatArray]:
    at = (rows[0] == major) & (rows[1] == minor)
    return rows[2][at], rows[3][at]


def assert_same_sketch(
    got: tuple[IntArray, FloatArray], want: tuple[IntArray, FloatArray], values: list[float]
) -> None:
    """Keys, counts, scale, min and max exactly; the sum within its rounding."""
    assert got[0].tolist() == want[0].tolist()
    sum_row = list(sketches.HEADER_KEYS).index(sketches.SUM_KEY)
    others = np.arange(len(got[0])) != sum_row
    assert got[1][others].tolist() == want[1][others].tolist()
    magnitude = sum(abs(Fraction(v)) for v in values) * 5  # weights are at most 5
    rounding = magnitude * Fraction(2 * len(values) + 2, 2**52) + Fraction(2) ** -1060
    assert abs(Fraction(float(got[1][sum_row])) - Fraction(float(want[1][sum_row]))) <= rounding


@settings(max_examples=60, deadline=None)
@given(parts(wide_values), st.randoms(use_true_random=False))
def test_merged_sketches_are_the_sketch_of_the_union_at_the_coarsest_scale(
    chosen: list[Part], rng: random.Random
) -> None:
    rng.shuffle(chosen)
    got = merged(chosen)
    keys = sorted({(p[0], p[1]) for p in chosen})
    heads = np.flatnonzero(got[2] == sketches.SCALE_KEY)
    assert list(zip(got[0][heads].tolist(), got[1][heads].tolist(), strict=True)) == keys
    for major, minor in keys:
        mine = [p for p in chosen if (p[0], p[1]) == (major, minor)]
        union = [v for p in mine for v in p[2]]
        want = build_one(union, [w for p in mine for w in p[3]], min(p[4] for p in mine))
        assert_same_sketch(sketch_at(got, major, minor), want, union)


@settings(max_examples=50, deadline=None)
@given(parts(exact_values), st.randoms(use_true_random=False))
def test_merging_is_associative_and_commutative(chosen: list[Part], rng: random.Random) -> None:
    """Sketches merged in groups and then again, in any order, are the sketches merged at
    once: what rollups of rollups and group-by merges rely on (the sums here are exact)."""
    once = merged(chosen)
    rng.shuffle(chosen)
    cut = sorted(rng.sample(range(len(chosen) + 1), 2))
    groups = [chosen[: cut[0]], chosen[cut[0] : cut[1]], chosen[cut[1] :]]
    partial = [merged(g) for g in groups if g]
    rng.shuffle(partial)
    # each partial result, read back as whole sketches, merged again
    again = sketches.merge_by(*(np.concatenate([p[i] for p in partial]) for i in range(4)))
    for got, want in zip(again, once, strict=True):
        assert got.tolist() == want.tolist()


@settings(max_examples=40, deadline=None)
@given(parts(exact_values))
def test_combine_merges_by_label_wherever_the_rows_of_a_label_are(chosen: list[Part]) -> None:
    major, minor, keys, values = rows_of_parts(chosen)
    label = 10 - 3 * major - minor  # labels out of order, and the rows of one scattered
    got_label, got_keys, got_values = sketches.combine(label, keys, values)
    want_major, want_minor, want_keys, want_values = sketches.merge_by(major, minor, keys, values)
    order = np.lexsort((want_keys, 10 - 3 * want_major - want_minor))
    assert got_label.tolist() == (10 - 3 * want_major - want_minor)[order].tolist()
    assert got_keys.tolist() == want_keys[order].tolist()
    assert got_values.tolist() == want_values[order].tolist()


def test_a_sketch_downscaled_keeps_every_count_and_its_header() -> None:
    values, counts = [1.0, 1.0625, 1.125, 1.5, 3.0, -2.5, 0.0], [1, 2, 3, 4, 5, 6, 7]
    fine = build_one(values, counts, 8)
    other = build_one([7.0], [1], 5)
    _, keys, merged_values = sketches.combine(
        np.zeros(len(fine[0]) + len(other[0]), np.int64),
        np.concatenate([fine[0], other[0]]),
        np.concatenate([fine[1], other[1]]),
    )
    want = build_one([*values, 7.0], [*counts, 1], 5)
    assert (keys.tolist(), merged_values.tolist()) == (want[0].tolist(), want[1].tolist())
    # At scale 2 (b = 2^0.25) 1.0625 and 1.125 share (1, 1.19]; 1.0, a power of two, tops the
    # bucket below.
    coarse = build_one(values, counts, 2)
    assert coarse[1][4:].tolist() == [6.0, 7.0, 1.0, 5.0, 4.0, 5.0]
    assert coarse[1][:4].tolist() == [2.0, 12.5, -2.5, 3.0]


# ---------------------------------------------------------------------------------------------
# Runs of sketch rows: the last sketch written of each (sid, ts) wins whole
# ---------------------------------------------------------------------------------------------

Write = tuple[int, int, list[float]]
writes = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 3), value_lists(exact_values, max_size=6)),
    min_size=1,
    max_size=12,
)


def sketch_rows(batch: list[Write], scale: int = 6) -> Columns:
    """The sketch rows of `batch`, in write order, as a store table holds them."""
    if not batch:
        return Columns.empty(SKETCH_WIDTH)
    built = [(sid, ts, *build_one(values, None, scale)) for sid, ts, values in batch]
    return Columns(
        np.concatenate([np.full(len(k), sid, np.uint32) for sid, _, k, _ in built]),
        np.concatenate([np.full(len(k), ts, np.int64) for _, ts, k, _ in built]),
        (
            np.concatenate([k.astype(np.float64) for _, _, k, _ in built]),
            np.concatenate([v for _, _, _, v in built]),
        ),
    )


def last_of_each(batch: list[Write]) -> Columns:
    """What a table of `batch` reads as: per (sid, ts) ascending, the sketch written last."""
    last = {(sid, ts): (sid, ts, values) for sid, ts, values in batch}
    return sketch_rows([last[k] for k in sorted(last)])


def assert_columns_equal(got: Columns, want: Columns) -> None:
    assert got.sid.tolist() == want.sid.tolist()
    assert got.ts.tolist() == want.ts.tolist()
    assert [c.tolist() for c in got.cols] == [c.tolist() for c in want.cols]


@settings(max_examples=60, deadline=None)
@given(writes, st.lists(st.integers(0, 12), max_size=4), st.lists(st.booleans(), max_size=5))
def test_runs_keep_the_last_sketch_written_of_each_key_whole(
    batch: list[Write], cuts: list[int], sorted_runs: list[bool]
) -> None:
    """However the writes were split into runs (head chunks in write order, or runs merged
    already: head parts and blocks), the merge holds exactly the last sketch of each key."""
    edges = [0, *sorted(min(c, len(batch)) for c in cuts), len(batch)]
    runs = [sketch_rows(batch[lo:hi]) for lo, hi in itertools.pairwise(edges)]
    runs = [
        merge([r], SKETCH_WIDTH) if i < len(sorted_runs) and sorted_runs[i] else r
        for i, r in enumerate(runs)
    ]
    want = last_of_each(batch)
    assert_columns_equal(merge(runs, SKETCH_WIDTH), want)
    # merging merged runs again (a compaction of blocks) changes nothing
    half = len(runs) // 2
    halves = [merge(runs[:half], SKETCH_WIDTH), merge(runs[half:], SKETCH_WIDTH)]
    assert_columns_equal(merge(halves, SKETCH_WIDTH), want)
    rows = sketch_rows(batch)
    keep = sketches.latest_rows(rows.sid.astype(np.int64), rows.ts, rows.cols[0].astype(np.int64))
    assert_columns_equal(rows.take(keep), want)


def test_a_sketch_written_again_replaces_the_old_one_even_with_fewer_buckets() -> None:
    old = sketch_rows([(1, 5, [1.0, 2.0, 4.0, 8.0]), (1, 6, [3.0])])
    new = sketch_rows([(1, 5, [100.0])])
    got = merge([old, new], SKETCH_WIDTH)
    assert_columns_equal(got, sketch_rows([(1, 5, [100.0]), (1, 6, [3.0])]))


@settings(max_examples=50, deadline=None)
@given(writes, st.integers(1, 3))
def test_rollup_of_sketch_runs_merges_the_last_written_of_each_key(
    batch: list[Write], width: int
) -> None:
    got = summarise_sketches(sketch_rows(batch), width)
    last = {(sid, ts): values for sid, ts, values in batch}
    buckets: dict[tuple[int, int], list[float]] = {}
    for (sid, ts), values in sorted(last.items()):
        buckets.setdefault((sid, ts - ts % width), []).extend(values)
    want = sketch_rows([(sid, bucket, values) for (sid, bucket), values in buckets.items()])
    assert_columns_equal(got, want)
    # backfill: new sketches added into the stored one of their bucket
    added = add_sketches_into(got, summarise_sketches(sketch_rows(batch[:1]), width))
    sid, ts, values = batch[0]
    buckets[(sid, ts - ts % width)] += values
    want = sketch_rows([(sid, bucket, values) for (sid, bucket), values in sorted(buckets.items())])
    assert_columns_equal(added, want)


# ---------------------------------------------------------------------------------------------
# The WAL
# ---------------------------------------------------------------------------------------------


@st.composite
def records(draw: st.DrawFn) -> Record:
    """A record of any tier with sketch rows (any bytes in them: the WAL does no maths)."""
    tier = draw(st.sampled_from([RAW, "1m"]))
    n = draw(st.integers(0, 5))
    width = RAW_WIDTH if tier == RAW else ROLLUP_WIDTH
    rows = Columns(
        np.arange(n, dtype=np.uint32),
        np.arange(n, dtype=np.int64) * 7,
        tuple(np.full(n, float(c)) for c in range(width)),
    )
    batch = draw(writes)
    sketch = sketch_rows(batch, draw(scales))
    new = ((0, Series.of("lat", {"host": "a"})),) if draw(st.booleans()) else ()
    watermark = None if tier == RAW else draw(st.integers(0, 2**62))
    return Record(tier, rows, new, watermark, sketches=sketch)


def assert_same_record(got: Record, want: Record) -> None:
    assert (got.tier, got.new_series, got.watermark_ns) == (
        want.tier,
        want.new_series,
        want.watermark_ns,
    )
    assert_columns_equal(got.rows, want.rows)
    assert_columns_equal(got.sketches, want.sketches)


def payload(frame: bytes) -> bytes:
    return frame[12:]


@pytest.mark.slow
@settings(max_examples=50, deadline=None)
@given(records())
def test_a_record_with_sketches_decodes_to_itself(record: Record) -> None:
    assert_same_record(decode(payload(encode(record))), record)


def test_a_record_of_the_format_before_sketches_still_decodes() -> None:
    """Written before the flags byte existed: `<BxxxIIq`, the columns, no sketch part."""
    ts = np.array([5, 9], "<i8")
    values = np.array([1.5, -2.0], "<f8")
    sid = np.array([3, 4], "<u4")
    old = struct.pack("<BxxxIIq", 0, 2, 0, -(2**63)) + ts.tobytes() + values.tobytes()
    got = decode(old + sid.tobytes())
    assert (got.tier, len(got.sketches), got.watermark_ns) == (RAW, 0, None)
    assert_columns_equal(got.rows, Columns(sid.astype(np.uint32), ts, (values,)))
    # and a record written now without sketches is byte for byte the old format
    rows = Columns(sid.astype(np.uint32), ts.astype(np.int64), (values.astype(np.float64),))
    assert payload(encode(Record(RAW, rows))) == old + sid.tobytes()


def frame_of(body: bytes) -> bytes:
    return struct.pack("<4sII", b"SBW1", len(body), zlib.crc32(body)) + body


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(records(), records(), st.data())
def test_a_torn_sketch_record_is_a_torn_tail(
    tmp_path_factory: pytest.TempPathFactory, good: Record, torn: Record, data: st.DataObject
) -> None:
    """Cut anywhere, or with a byte flipped, in the record or in its sketch part (which ends
    it): reading stops after the good record, at its end."""
    first, second = encode(good), encode(torn)
    assert len(torn.sketches)
    sketch_bytes = len(torn.sketches) * 28 + 4  # ts, key, value, sid and the count
    cut = data.draw(st.integers(0, len(second) - 1))
    in_sketches = data.draw(st.integers(len(second) - sketch_bytes, len(second) - 1))
    flipped = bytearray(second)
    flipped[data.draw(st.integers(len(second) - sketch_bytes, len(second) - 1))] ^= 0x5A
    for tail in (second[:cut], second[:in_sketches], bytes(flipped)):
        path = tmp_path_factory.mktemp("wal") / "1.wal"
        path.write_bytes(first + tail)
        got = list(read_records(path))
        assert len(got) == 1
        assert got[0][1] == len(first)
        assert_same_record(got[0][0], good)
    path = tmp_path_factory.mktemp("wal") / "1.wal"
    path.write_bytes(first + second)
    assert [end for _, end in read_records(path)] == [len(first), len(first) + len(second)]


def test_a_sketch_flag_whose_rows_are_missing_is_corruption_not_a_tail(tmp_path: Path) -> None:
    """A record whose CRC checks but whose sketch part is short was written so: not a tail to
    cut quietly (`read_records` raises)."""
    rows = Columns(np.array([1], np.uint32), np.array([2], np.int64), (np.array([3.0]),))
    sketch = sketch_rows([(1, 2, [4.0])])
    body = payload(encode(Record(RAW, rows, sketches=sketch)))
    (tmp_path / "1.wal").write_bytes(frame_of(body[:-4]))
    with pytest.raises(CorruptStoreError):
        list(read_records(tmp_path / "1.wal"))
