"""Pure numpy rollups: samples to per-bucket summaries, coarser buckets, merges and aggregates.

Every function takes columns and returns columns; none loops in Python per point or per row.
A rollup row keeps min, max, sum, count and last, so any coarser bucket, any group of series and
any of the aggregates in `AGGREGATES` can be computed exactly from rows (mean = sum / count, never
a mean of means).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from storage.columns import summaries
from storage.records import FloatArray, IndexArray, IntArray, Rollups, Samples, Series


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
    index = group[rollups.index]
    bucket = floor_to(rollups.bucket_ns, width_ns)
    # lexsort is stable: equal keys keep input order, which decides `last` between twins.
    order = np.lexsort((rollups.bucket_ns, bucket, index))
    index, bucket = index[order], bucket[order]
    starts = _group_starts(index, bucket)
    ends = np.append(starts[1:], len(index))
    return Rollups(
        groups,
        index[starts].astype(np.int32, copy=False),
        bucket[starts],
        np.minimum.reduceat(rollups.min[order], starts),
        np.maximum.reduceat(rollups.max[order], starts),
        np.add.reduceat(rollups.sum[order], starts),
        np.add.reduceat(rollups.count[order], starts),
        rollups.last[order][ends - 1],
    )


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
