"""Sketches in queries: merged per bucket and group, and read as percentiles or summaries.

A query's percentile (`agg=p99`, `p99.9`, any `pNN.N`) comes from the sketches of every series
of a group merged per step bucket (bucket counts add), never from per-flush percentiles, so the
p99 of a week or of a fleet of hosts is the p99 of all the values they received.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from aggregator.rollups import floor_to
from storage import sketch_quantiles, sketch_sums, sketches
from storage.records import FloatArray, IndexArray, IntArray, Rollups, Series, Sketches
from storage.sketch_packs import PackedSketches

_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")


def percentile(agg: str) -> float | None:
    """The quantile (0..1] an aggregate such as `p99` or `p99.9` asks for; None if it is none."""
    match = _PERCENTILE.fullmatch(agg)
    if match is None:
        return None
    value = float(match.group(1))
    return value / 100 if 0 < value <= 100 else None


def regroup_sketches(
    rows: Sketches, group: IndexArray, groups: Sequence[Series], width_ns: int
) -> Sketches:
    """Merge sketches into one per (group[index], bucket of `width_ns`), as `regroup` does
    rollup rows."""
    if not len(rows):
        return Sketches(groups, rows.index, rows.ts_ns, rows.keys, rows.values)
    starts = np.flatnonzero(rows.keys == sketches.SCALE_KEY)  # each sketch once, not each row
    major = group[rows.index[starts]].astype(np.int64)
    minor = floor_to(rows.ts_ns[starts], width_ns)
    if _each_its_own(major, minor, rows.index[starts], rows.ts_ns[starts]):
        return Sketches(groups, rows.index, rows.ts_ns, rows.keys, rows.values)
    index, bucket, keys, values = sketches.merge_sketches(
        starts, major, minor, rows.keys, rows.values
    )
    return Sketches(groups, index.astype(np.int32, copy=False), bucket, keys, values)


def _each_its_own(major: IntArray, minor: IntArray, index: IndexArray, ts_ns: IntArray) -> bool:
    """True when every sketch is alone in its (group, bucket), the group numbers being the
    series positions and the buckets the sketches' times, in order: nothing to merge."""
    if not (np.array_equal(major, index) and np.array_equal(minor, ts_ns)):
        return False
    return bool(
        ((major[1:] > major[:-1]) | ((major[1:] == major[:-1]) & (minor[1:] > minor[:-1]))).all()
    )


def cascade_sketches(rows: Sketches, width_ns: int) -> Sketches:
    """Sketches of a finer tier (or raw) merged into buckets of `width_ns`."""
    identity = np.arange(len(rows.series), dtype=np.int32)
    return regroup_sketches(rows, identity, rows.series, width_ns)


def as_rollups(merged: Sketches) -> Rollups:
    """Merged sketches as rollup rows (count, sum, min, max; no `last`), for the aggregates
    that summaries answer."""
    row = np.arange(len(merged))
    first, count, total, low, high = sketches.summary(row, merged.keys, merged.values)
    no_last = np.full(len(count), np.nan)
    return Rollups(
        merged.series, merged.index[first], merged.ts_ns[first], low, high, total, count, no_last
    )


def packed_quantile_rows(
    found: PackedSketches, group: IndexArray, groups: Sequence[Series], width_ns: int, q: float
) -> tuple[IndexArray, IntArray, FloatArray] | None:
    """`quantile_rows` of `regroup_sketches` of the packed sketches for whole counts
    (`storage.sketch_sums.whole_counts`), the same answers, each depending on its sketch alone:
    vectorised over the packed sketches (`storage.sketch_quantiles`), or by rows when a
    group's sketches differ in scale or their keys lie far apart. None for other counts,
    whose answers depend on the order of the rows read (`sketches.exact_quantiles`)."""
    if not sketch_sums.whole_counts(found.count):
        return None
    major = group[found.index].astype(np.int64)
    minor = floor_to(found.ts_ns, width_ns)
    order = np.lexsort((minor, major))
    major, minor = major[order], minor[order]
    new = np.ones(len(order), np.bool_)
    new[1:] = (major[1:] != major[:-1]) | (minor[1:] != minor[:-1])
    if new.all():  # each sketch alone in its (group, bucket): nothing to merge
        return major.astype(np.int32), minor, sketch_quantiles.sketch_quantiles(found, q)[order]
    label = np.empty(len(order), np.int64)
    label[order] = np.cumsum(new) - 1
    merged = sketch_quantiles.merged_quantiles(found, label, int(new.sum()), q)
    if merged is not None:
        return major[new].astype(np.int32), minor[new], merged
    return quantile_rows(regroup_sketches(found.rows(), group, groups, width_ns), q)[0]


def quantile_rows(
    merged: Sketches, q: float
) -> tuple[tuple[IndexArray, IntArray, FloatArray], bool]:
    """(index, bucket, value) of the `q` quantile of each merged sketch, and whether each
    value depends on its sketch alone (`sketches.exact_quantiles`)."""
    row = np.arange(len(merged))
    first, values, exact = sketches.exact_quantiles(row, merged.keys, merged.values, q)
    return (merged.index[first], merged.ts_ns[first], values), exact
