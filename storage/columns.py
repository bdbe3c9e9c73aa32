"""Column runs: rows of one table as numpy columns (series id, ts, values), sorted and merged.

A raw run has one value column; a rollup run has five (min, max, sum, count, last); a sketch
run two (key, value), several rows per (series, ts): one sketch (`storage.sketches`), which a
later sketch of the same key replaces whole. Runs are immutable once built. Sorting is always
stable, so among rows with the same (series, ts) the order of writing survives and the last one
written wins: a raw point replaces the point of the same time, a rollup row the row of the same
bucket (a bucket rolled up again is whole).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from storage import sketches
from storage.records import FloatArray, IntArray

IdArray = NDArray[np.uint32]

RAW_WIDTH = 1
ROLLUP_WIDTH = 5  # min, max, sum, count, last
SKETCH_WIDTH = 2  # key, value
Summary = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]


@dataclass(frozen=True, slots=True)
class Columns:
    """Row i is (sid[i], ts[i], cols[0][i], ...); `sid` is a series id or a result position."""

    sid: IdArray
    ts: IntArray
    cols: tuple[FloatArray, ...]

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def width(self) -> int:
        return len(self.cols)

    @classmethod
    def empty(cls, width: int) -> Columns:
        return cls(
            np.empty(0, np.uint32),
            np.empty(0, np.int64),
            tuple(np.empty(0, np.float64) for _ in range(width)),
        )

    def take(self, rows: NDArray[np.intp] | NDArray[np.bool_]) -> Columns:
        return Columns(self.sid[rows], self.ts[rows], tuple(c[rows] for c in self.cols))

    def with_sid(self, sid: IdArray) -> Columns:
        return Columns(sid, self.ts, self.cols)


def concat(runs: Sequence[Columns], width: int) -> Columns:
    """The rows of `runs`, in order."""
    runs = [r for r in runs if len(r)]
    if not runs:
        return Columns.empty(width)
    if len(runs) == 1:
        return runs[0]
    return Columns(
        np.concatenate([r.sid for r in runs]),
        np.concatenate([r.ts for r in runs]),
        tuple(np.concatenate([r.cols[i] for r in runs]) for i in range(width)),
    )


def is_strictly_sorted(run: Columns) -> bool:
    """True when keys (sid, ts) strictly increase: sorted with no duplicates."""
    if len(run) < 2:
        return True
    sid, ts = run.sid, run.ts
    # Series ids first: an unsorted run (the usual case here) fails this cheaper test.
    if not bool((sid[1:] >= sid[:-1]).all()):
        return False
    return bool(((sid[1:] != sid[:-1]) | (ts[1:] > ts[:-1])).all())


def merge(runs: Sequence[Columns], width: int, *, combine: bool = False) -> Columns:
    """One run sorted by (sid, ts) with one row per key: later rows replace earlier ones, or
    with `combine` (rollup rows of stores from before rows replaced each other, where late
    points were extra partial rows) are combined: min of mins, max of maxes, sums, last."""
    run = concat(runs, width)
    if width == SKETCH_WIDTH:
        return _merge_sketches(run)
    if is_strictly_sorted(run):
        return run
    run = run.take(key_order(run.sid, run.ts))
    last = np.empty(len(run), np.bool_)
    last[-1] = True
    last[:-1] = (run.sid[1:] != run.sid[:-1]) | (run.ts[1:] != run.ts[:-1])
    if not combine:
        return run.take(last)
    return _combined(run, np.flatnonzero(np.r_[True, last[:-1]]), np.flatnonzero(last))


def key_order(major: NDArray[np.integer[Any]], minor: IntArray) -> NDArray[np.intp]:
    """The stable order of rows by (major, minor), major never negative: rows of one key keep
    their order. One int64 key when the pair fits in it, sorted stably, so that timsort merges
    the sorted runs it finds (a head's parts, the tiers of a query) instead of sorting each
    key in turn as lexsort does; else lexsort."""
    if not len(minor):
        return np.arange(0)
    lo, hi = int(minor.min()), int(minor.max())
    if (int(major.max()) + 1) * (hi - lo + 1) < 2**63:
        return np.argsort(major.astype(np.int64) * (hi - lo + 1) + (minor - lo), kind="stable")
    return np.lexsort((minor, major))


def _merge_sketches(run: Columns) -> Columns:
    """Sketch rows sorted by (sid, ts, key), the last sketch written of each (sid, ts) whole."""
    if len(run) < 2:
        return run
    sid, ts, key = run.sid, run.ts, run.cols[0]
    same = (sid[1:] == sid[:-1]) & (ts[1:] == ts[:-1])
    if bool((sid[1:] >= sid[:-1]).all()) and bool(
        ((sid[1:] != sid[:-1]) | (ts[1:] > ts[:-1]) | (same & (key[1:] > key[:-1]))).all()
    ):
        return run
    keys = run.cols[0].astype(np.int64)
    return run.take(sketches.latest_rows(run.sid.astype(np.int64), run.ts, keys))


def summarise_sketches(rows: Columns, width_ns: int) -> Columns:
    """Sketch rows merged into one sketch per (sid, bucket of `width_ns`)."""
    rows = merge([rows], SKETCH_WIDTH)
    return _merged_sketches(rows.sid, rows.ts - rows.ts % width_ns, rows.cols)


def add_sketches_into(stored: Columns, new: Columns) -> Columns:
    """Sketches `new` merged into the `stored` sketches of the same keys (backfill)."""
    run = concat([stored, new], SKETCH_WIDTH)
    return _merged_sketches(run.sid, run.ts, run.cols) if len(run) else run


def _merged_sketches(sid: IdArray, ts: IntArray, cols: tuple[FloatArray, ...]) -> Columns:
    """One sketch per (sid, ts) of rows whose sketches are whole, merged."""
    if not len(sid):
        return Columns.empty(SKETCH_WIDTH)
    merged_sid, merged_ts, keys, values = sketches.merge_by(
        sid.astype(np.int64), ts, cols[0].astype(np.int64), cols[1]
    )
    return Columns(merged_sid.astype(np.uint32), merged_ts, (keys.astype(np.float64), values))


def _combined(run: Columns, starts: NDArray[np.intp], picked: NDArray[np.intp]) -> Columns:
    """One rollup row per group of the sorted `run` (groups begin at `starts`): min of mins,
    max of maxes, sums and counts added, and `last` from the group's row in `picked`."""
    lo, hi, total, count, last = run.cols
    return Columns(
        run.sid[picked],
        run.ts[picked],
        (
            np.minimum.reduceat(lo, starts),
            np.maximum.reduceat(hi, starts),
            np.add.reduceat(total, starts),
            np.add.reduceat(count, starts),
            last[picked],
        ),
    )


def select_sorted(run: Columns, sids: IdArray | None, start_ns: int, end_ns: int) -> Columns:
    """Rows of a sorted run whose sid is in the sorted `sids` (None: any) and whose ts is in
    [start_ns, end_ns). Binary searches find each series and its time range, so the cost
    follows the rows returned, not the rows stored."""
    if sids is None:
        keep = (run.ts >= start_ns) & (run.ts < end_ns)
        return run if bool(keep.all()) else run.take(keep)
    first, lengths = _slices(run, sids, start_ns, end_ns)
    total = int(lengths.sum())
    if total == 0:
        return Columns.empty(run.width)
    # Row numbers of every [first, first + length) range, built without a Python loop.
    rows = np.repeat(first - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
    return run.take(rows)


def has_rows_sorted(run: Columns, sids: IdArray, start_ns: int, end_ns: int) -> NDArray[np.bool_]:
    """Whether a sorted run has a row in [start_ns, end_ns) of each of the sorted `sids`: the
    binary searches of `select_sorted`, no row taken."""
    return _slices(run, sids, start_ns, end_ns)[1] > 0


def _slices(
    run: Columns, sids: IdArray, start_ns: int, end_ns: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Where each of the sorted `sids` has its rows in [start_ns, end_ns) in a sorted run:
    the first row and how many."""
    lo = np.searchsorted(run.sid, sids, "left")
    hi = np.searchsorted(run.sid, sids, "right")
    first = _lower_bound(run.ts, lo, hi, start_ns)
    return first, _lower_bound(run.ts, first, hi, end_ns) - first


_FEW_SLICES = 16


def _lower_bound(
    ts: IntArray, lo: NDArray[np.intp], hi: NDArray[np.intp], value: int
) -> NDArray[np.intp]:
    """For each sorted slice ts[lo[i]:hi[i]], the first position whose ts >= value: one
    vectorised binary search over all slices at once (for a few slices, one searchsorted each:
    a dashboard panel of one series pays a few C calls, not a Python loop of numpy steps)."""
    if len(lo) <= _FEW_SLICES:
        found = [
            start + int(np.searchsorted(ts[start:end], value))
            for start, end in zip(lo.tolist(), hi.tolist(), strict=True)
        ]
        return np.asarray(found, np.intp)
    lo, hi = lo.copy(), hi.copy()
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi) // 2
        below = np.zeros(len(lo), np.bool_)
        below[open_] = ts[mid[open_]] < value
        lo = np.where(below, mid + 1, lo)
        hi = np.where(open_ & ~below, mid, hi)


def select_unsorted(
    run: Columns, member: NDArray[np.bool_] | None, start_ns: int, end_ns: int
) -> Columns:
    """Rows of any run whose sid is marked in `member` (None: any) and ts is in the range.

    `member` has one extra False slot at the end that ids beyond it are clipped to."""
    keep = (run.ts >= start_ns) & (run.ts < end_ns)
    if member is not None:
        keep &= np.take(member, run.sid, mode="clip")
    return run.take(keep)


def drop_before(run: Columns, floor_ns: int) -> Columns:
    """The run without rows older than `floor_ns` (retention)."""
    keep = run.ts >= floor_ns
    return run if bool(keep.all()) else run.take(keep)


def summarise(rows: Columns, width_ns: int) -> Columns:
    """Raw rows as rollup rows, one per (sid, bucket of `width_ns`): min, max, sum, count and
    last (by time); a point written twice at one time counts once (the last written)."""
    if not len(rows):  # a backfill of sketches alone has no rows for the tier
        return Columns.empty(ROLLUP_WIDTH)
    rows = merge([rows], RAW_WIDTH)  # sorted by (sid, ts), so by (sid, bucket) in time order
    sid, values = rows.sid, rows.cols[0]
    bucket = rows.ts - rows.ts % width_ns
    starts = np.flatnonzero(np.r_[True, (sid[1:] != sid[:-1]) | (bucket[1:] != bucket[:-1])])
    return Columns(sid[starts], bucket[starts], summaries(values, starts))


def summaries(values: FloatArray, starts: NDArray[np.signedinteger[Any]]) -> Summary:
    """Min, max, sum, count and last of each group of `values`, whose groups begin at `starts`
    and are in time order within: a rollup row's five columns."""
    ends = np.append(starts[1:], len(values))
    return (
        np.minimum.reduceat(values, starts),
        np.maximum.reduceat(values, starts),
        np.add.reduceat(values, starts),
        (ends - starts).astype(np.float64),
        values[ends - 1],
    )


def add_into(stored: Columns, new: Columns) -> Columns:
    """Rollup rows `new` added to the `stored` rows of the same keys (each one row per key):
    counts and sums add, min of mins, max of maxes; a stored row keeps its `last`, as
    backfilled points are rarely a bucket's latest."""
    run = concat([stored, new], ROLLUP_WIDTH)
    if not len(run):
        return run
    run = run.take(key_order(run.sid, run.ts))  # stable: a stored row comes first
    starts = np.flatnonzero(
        np.r_[True, (run.sid[1:] != run.sid[:-1]) | (run.ts[1:] != run.ts[:-1])]
    )
    return _combined(run, starts, starts)
