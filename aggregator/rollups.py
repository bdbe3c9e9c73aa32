"""Pure numpy rollups: samples to per-bucket summaries, coarser buckets, merges and aggregates.

Every function takes columns and returns columns; none loops in Python per point or per row.
A rollup row keeps min, max, sum, count and last, so any coarser bucket, any group of series and
any of the aggregates in `AGGREGATES` can be computed exactly from rows (mean = sum / count, never
a mean of means).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from storage.columns import key_order, summaries
from storage.records import FloatArray, IndexArray, IntArray, Rollups, Samples, Series, merge_series


def floor_to(ts_ns: IntArray, width_ns: int) -> IntArray:
    """Start of the `width_ns` bucket holding each timestamp (buckets are aligned to the epoch)."""
    return ts_ns - np.mod(ts_ns, np.int64(width_ns))


def _empty(series: Sequence[Series]) -> Rollups:
    e = Rollups.empty()
    return Rollups(series, e.index, e.bucket_ns, e.min, e.max, e.sum, e.count, e.last)


def _is_sorted(index: IndexArray, ts_ns: IntArray) -> bool:
    """True if rows are already ordered by (index, ts_ns), as `Store.read` returns them."""
    if len(index) < 2:
        return True
    di = np.diff(index)
    return bool(np.all((di > 0) | ((di == 0) & (np.diff(ts_ns) >= 0))))


def _group_starts(index: IndexArray, bucket_ns: IntArray) -> IntArray:
    """Positions where a new (index, bucket) group begins in rows sorted by (index, bucket)."""
    change = np.empty(len(index), np.bool_)
    change[0] = True
    np.not_equal(index[1:], index[:-1], out=change[1:])
    change[1:] |= bucket_ns[1:] != bucket_ns[:-1]
    return np.flatnonzero(change)


def rollup(samples: Samples, width_ns: int) -> Rollups:
    """One row per (series, bucket) of `width_ns`: min, max, sum, count and last (by time)."""
    if not len(samples):
        return _empty(samples.series)
    bucket = floor_to(samples.ts_ns, width_ns)
    index, values = samples.index, samples.values
    if not _is_sorted(index, samples.ts_ns):
        # Sorting by time inside each bucket puts the latest point last, which is `last`.
        order = np.lexsort((samples.ts_ns, index))
        index, bucket, values = index[order], bucket[order], values[order]
    starts = _group_starts(index, bucket)
    return Rollups(samples.series, index[starts], bucket[starts], *summaries(values, starts))


def regroup(
    rollups: Rollups, group: IndexArray, groups: Sequence[Series], width_ns: int
) -> Rollups:
    """Merge rows into one per (group[index], bucket of `width_ns`).

    `group` maps each series index of `rollups` to an index into `groups`. Sums and counts add,
    min of mins, max of maxes, and `last` comes from the latest bucket; rows of the same bucket
    keep their input order, so the later row wins (late rows are written after the first).
    """
    if not len(rollups):
        return _empty(groups)
    index, bucket, merged = _merged(rollups, group, width_ns, _COLUMNS)
    return Rollups(groups, index, bucket, *(merged[name] for name in _COLUMNS))


class RowParts:
    """Rollup rows in parts (one per tier read, `aggregator.tiered.read_row_parts`): the rows
    of `Rollups.concat(parts)`, a column joined only when it is asked for. A mean of 100 series
    over a day joined 144,000 rows of min, max and last to read none of them."""

    def __init__(self, parts: Sequence[Rollups]) -> None:
        self.parts = [p for p in parts if len(p)]
        self.series: Sequence[Series]
        self.index: IndexArray
        if len(self.parts) > 1:
            self.series, self.index = merge_series(self.parts)
        else:  # as Rollups.concat: one part is the rows as they are
            whole = self.parts[0] if self.parts else Rollups.empty()
            self.series, self.index = whole.series, whole.index

    def __len__(self) -> int:
        return len(self.index)

    def column(self, name: str) -> NDArray[Any]:
        """`bucket_ns` or a rollup column of every row, in order."""
        arrays = [getattr(p, name) for p in self.parts] or [getattr(Rollups.empty(), name)]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def aggregate(
    rollups: Rollups | RowParts, group: IndexArray, width_ns: int, agg: str
) -> tuple[IndexArray, IntArray, FloatArray]:
    """`AGGREGATES[agg]` of `regroup`'s rows, and their group and bucket: the same figures,
    with only the columns `agg` reads merged (a mean of many rows has no use for min, max and
    last, which were a third of a query's time)."""
    if not len(rollups):
        return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64)
    index, bucket, merged = _merged(rollups, group, width_ns, _READS[agg])
    nan = np.broadcast_to(np.float64(np.nan), len(index))  # columns `agg` does not read
    columns = (merged.get(name, nan) for name in _COLUMNS)
    return index, bucket, AGGREGATES[agg](Rollups((), index, bucket, *columns))


_COLUMNS = ("min", "max", "sum", "count", "last")


def _merged(
    rollups: Rollups | RowParts, group: IndexArray, width_ns: int, columns: Sequence[str]
) -> tuple[IndexArray, IntArray, dict[str, FloatArray]]:
    """`regroup`'s group, bucket and the named columns of each merged row."""
    index = group[rollups.index]
    own_bucket = _column(rollups, "bucket_ns")
    order = _merge_order(index, own_bucket)
    bucket = floor_to(own_bucket, width_ns)
    if order is not None:
        index, bucket = index[order], bucket[order]
    starts = _group_starts(index, bucket)
    merged = {}
    for name in columns:
        column = _column(rollups, name)
        column = column if order is None else column[order]
        if name == "last":
            merged[name] = column[np.append(starts[1:], len(index)) - 1]
        else:
            merged[name] = _MERGE[name].reduceat(column, starts)
    return index[starts].astype(np.int32, copy=False), bucket[starts], merged


def _column(rows: Rollups | RowParts, name: str) -> NDArray[Any]:
    if isinstance(rows, RowParts):
        return rows.column(name)
    found: NDArray[Any] = getattr(rows, name)
    return found


_MERGE = {"min": np.minimum, "max": np.maximum, "sum": np.add, "count": np.add}


def _merge_order(index: IndexArray, bucket_ns: IntArray) -> IntArray | None:
    """The stable order of rows by (group, bucket), None when they are in it already. Rows
    sorted by their own bucket are sorted by any coarser one (flooring keeps the order), and
    equal keys are then the same rows, so two keys give lexsort's order of three."""
    if _is_sorted(index, bucket_ns):
        return None
    return key_order(index, bucket_ns)


def cascade(rollups: Rollups, width_ns: int) -> Rollups:
    """Rows of a fine tier merged into rows of `width_ns` (a multiple of the fine width)."""
    identity = np.arange(len(rollups.series), dtype=np.int32)
    return regroup(rollups, identity, rollups.series, width_ns)


def combine(rollups: Rollups) -> Rollups:
    """Merge rows with the same (series, bucket); rows of one bucket keep their input order."""
    if not len(rollups):
        return rollups
    identity = np.arange(len(rollups.series), dtype=np.int32)
    # A width of 1 ns leaves every bucket as it is; only twins merge.
    return regroup(rollups, identity, rollups.series, 1)


def _mean(r: Rollups) -> FloatArray:
    return r.sum / r.count


AGGREGATES: dict[str, Callable[[Rollups], FloatArray]] = {
    "mean": _mean,
    "min": lambda r: r.min,
    "max": lambda r: r.max,
    "sum": lambda r: r.sum,
    "count": lambda r: r.count,
    "last": lambda r: r.last,
}
"""The aggregates a query may ask for, each computed from combined rollup rows."""

_READS = {name: (name,) for name in AGGREGATES} | {"mean": ("sum", "count")}
"""The columns each aggregate reads."""
