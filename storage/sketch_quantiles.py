"""Quantiles of packed sketches (`storage.sketch_packs`), vectorised across every sketch or
merged group at once, equal to `storage.sketches.exact_quantiles` of the same sketches as rows.

Only for whole, non-negative counts summing below 2^53 (`storage.sketch_sums.whole_counts`):
every running count is then exact in any order of addition, so sums over blocks of rows
(`search_running`) or a count table added up in chunks find the very bucket a running sum over
the rows would. Sketches alone in their group are ranked where they lie, and a bucket's
key comes from sums of key deltas between the rows looked at (`prefix_at`): of the millions of
bucket rows of a week of sketches, no key is decoded but the two each quantile lies between.
Sketches merged into groups are added into a dense (group, key) table, ranked row by row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from storage import sketches
from storage.records import FloatArray, IntArray
from storage.sketch_packs import PackedSketches
from storage.sketch_sums import prefix_at, search_running


def sketch_quantiles(packed: PackedSketches, q: float) -> FloatArray:
    """The `q` quantile of each sketch (NaN for an empty one), as `exact_quantiles` gives it;
    counts must be `whole_counts`."""
    below, above, ranks, total = _ranked(packed.count, packed.bounds, q)
    rows = len(packed.count)
    if not rows:
        return np.full(len(packed), np.nan)
    begin = packed.bounds[:-1]
    empty = total == 0
    # Per sketch its first bucket row, then the two ranked (its first when it has none), clipped
    # to the last row: sorted, as `prefix_at` wants them.
    looked = np.column_stack([begin, np.where(empty, begin, below), np.where(empty, begin, above)])
    looked = np.minimum(looked, rows - 1)
    running = prefix_at(packed.key_delta, looked.ravel(), np.int64).reshape(-1, 3)
    keys = packed.first_key[:, None] + (running[:, 1:] - running[:, :1])  # a first row's delta is 0
    return _interpolated(keys, packed.scale, ranks, total, packed.low, packed.high)


def merged_quantiles(
    packed: PackedSketches, label: IntArray, groups: int, q: float, chunk_rows: int = 1 << 18
) -> FloatArray | None:
    """The `q` quantile of each of `groups` merged sketches, sketch i merging into
    `label[i]`, as `exact_quantiles` gives it after `combine`: bucket counts added in a dense
    table of (group, key), whose first column of each group holds the zero buckets. None when
    the sketches of a group differ in scale or the table would be much larger than the rows
    (keys far apart, or zeros between negative and positive values); counts must be
    `whole_counts`."""
    scale = np.full(groups, sketches.MAX_SCALE, np.int64)
    np.minimum.at(scale, label, packed.scale)
    if bool((packed.scale != scale[label]).any()):
        return None
    lengths, spans = packed.lengths, packed.key_spans()
    # A zero bucket is a sketch's first when it has no negative values; its next key is the
    # delta after it.
    zero = np.flatnonzero((lengths > 0) & (packed.first_key == 0))
    if len(zero) and bool((packed.first_key < 0).any()):
        return None
    first = packed.first_key.copy()
    first[zero[lengths[zero] > 1]] = packed.key_delta[packed.bounds[zero[lengths[zero] > 1]] + 1]
    keyed = np.flatnonzero(lengths > np.isin(np.arange(len(lengths)), zero))  # a nonzero bucket
    lowest = np.zeros(groups, np.int64)
    highest = np.zeros(groups, np.int64)
    if len(keyed):
        lowest[label[keyed]] = np.iinfo(np.int64).max
        highest[label[keyed]] = np.iinfo(np.int64).min
        np.minimum.at(lowest, label[keyed], first[keyed])
        np.maximum.at(highest, label[keyed], packed.first_key[keyed] + spans[keyed])
    lowest -= 1  # the zero buckets' column
    span = int((highest - lowest).max()) + 1 if groups else 1
    if groups * span > 4 * len(packed.count) + 65_536:
        return None
    table = np.zeros(groups * span)
    plus = label * span - lowest[label]
    # `chunk_rows` rows at a time, whole sketches: the cells and counts of each chunk stay in
    # cache while they are added in, and no array of every row is made.
    chunks = np.searchsorted(packed.bounds, np.arange(0, packed.bounds[-1], chunk_rows))
    chunks = np.unique(np.append(chunks, len(packed)))
    for start, stop in zip(chunks[:-1].tolist(), chunks[1:].tolist(), strict=True):
        lo, hi = packed.bounds[start], packed.bounds[stop]
        cells = packed.keys(plus, spans, start, stop)
        zeros = zero[(zero >= start) & (zero < stop)]
        cells[packed.bounds[zeros] - lo] = label[zeros] * span
        np.add.at(table, cells, packed.count[lo:hi].astype(np.float64))
    bounds = np.arange(groups + 1, dtype=np.int64) * span
    below, above, ranks, total = _ranked(table, bounds, q)
    at = np.where((total > 0)[:, None], np.column_stack([below, above]) - bounds[:-1, None], 0)
    low = np.full(groups, np.inf)
    np.minimum.at(low, label, packed.low)
    high = np.full(groups, -np.inf)
    np.maximum.at(high, label, packed.high)
    keys = np.where(at == 0, 0, lowest[:, None] + at)
    return _interpolated(keys, scale, ranks, total, low, high)


def _ranked(
    count: NDArray[Any], bounds: IntArray, q: float
) -> tuple[IntArray, IntArray, tuple[FloatArray, FloatArray], FloatArray]:
    """Of each sketch (bucket rows bounds[i]:bounds[i + 1] of `count`): the bucket rows of the
    ranks a `q` quantile lies between, those ranks, and its count."""
    running = prefix_at(count, bounds[1:] - 1, np.float64)
    before = np.concatenate([[0.0], running[:-1]])
    total = running - before
    rank, low, upper = sketches.ranks(total, q)
    found = search_running(count, np.column_stack([before + low, before + upper]).ravel())
    return found[0::2], found[1::2], (rank, low), total


def _interpolated(
    keys: IntArray,
    scale: IntArray,
    ranks: tuple[FloatArray, FloatArray],
    total: FloatArray,
    low: FloatArray,
    high: FloatArray,
) -> FloatArray:
    """Quantiles from the keys of the buckets below and above (columns of `keys`)."""
    below = sketches.estimates(keys[:, 0], scale)
    above = sketches.estimates(keys[:, 1], scale)
    return sketches.interpolate(below, above, *ranks, low, high, total)
