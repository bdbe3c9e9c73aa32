"""Mergeable latency sketches: base-2 exponential histograms, as OpenTelemetry and Prometheus'
native histograms define them, kept as rows of (key, value).

Mapping. At scale `s` the base is b = 2^(2^-s) and bucket i holds the magnitudes in
(b^i, b^(i+1)], so a bucket's upper bound is b times its lower one. StatsD timers are kept at
`STATSD_SCALE` 6: a value is estimated by its bucket's harmonic middle 2LU / (L + U), off by at
most (b - 1) / (b + 1) = 0.54% (scale 5 would give 1.08%). Exact zeros have a bucket of their
own; negative values have the buckets of their magnitude, mirrored.

Rows. A sketch is contiguous rows in key order (`storage.records.Sketches`; in the embedded
store, rows of a sketch table of width 2: key, value):

    key SCALE_KEY (-2^52)        value: the scale s
    key SUM_KEY, MIN_KEY, MAX_KEY  value: sum, min and max of the values (weighted sum)
    key -(2^40 + i)              value: count of negative values with magnitude in bucket i
    key 0                        value: count of zeros
    key 2^40 + i                 value: count of positive values in bucket i

Keys order the rows by the values they hold, and every key is exact as a float64. Counts are
weighted: a StatsD value sent with `@0.1` counts 10 times; the count of a sketch is the sum of
its bucket rows, so it can never disagree with them.

Merging adds the counts of equal keys, takes min of mins, max of maxes and the sum of sums.
Sketches of different scales merge at the coarsest of them: a bucket i of scale s lies wholly
inside bucket i >> (s - t) of scale t < s (floor shift, negative i included), so downscaling is
exact at the coarser resolution. An OpenTelemetry exponential histogram or a Prometheus native
histogram at scale s is these rows as they are: positive bucket `offset + j` is key
2^40 + offset + j, negative ones mirrored, the zero count key 0 (a zero threshold above 0 is
kept as the zero bucket too). Rollups and group-by merges are exact (bucket counts add), so a
percentile is the same whichever tier or grouping it is read from, within the scale's error.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from storage.records import FloatArray, IntArray

STATSD_SCALE = 6
SCALE_KEY = -(2**52)
SUM_KEY = SCALE_KEY + 1
MIN_KEY = SCALE_KEY + 2
MAX_KEY = SCALE_KEY + 3
HEADER_KEYS = (SCALE_KEY, SUM_KEY, MIN_KEY, MAX_KEY)
BUCKET_BASE = 2**40  # |key| - 2**40 is the bucket index, which stays within +-2**31
MAX_SCALE = 20  # OpenTelemetry's largest

BoolArray = NDArray[np.bool_]


def relative_error(scale: int) -> float:
    """The largest relative error of a value estimated from a bucket at `scale`."""
    base = 2.0 ** (2.0**-scale)
    return float((base - 1) / (base + 1))


def bucket_index(magnitudes: FloatArray, scale: int) -> IntArray:
    """The bucket of each positive magnitude at `scale`: i with b^i < m <= b^(i+1)."""
    mantissa, exponent = np.frexp(magnitudes)
    with np.errstate(divide="ignore"):
        index = np.ceil(np.log2(magnitudes) * 2.0**scale).astype(np.int64) - 1
    # Exact powers of two sit on a bound: log2 gives them exactly, but keep OpenTelemetry's
    # rule (2^e is the top of its bucket) independent of rounding.
    exact = mantissa == 0.5
    if exact.any():
        power = exponent[exact].astype(np.int64) - 1  # the value is 2^power
        index[exact] = (power << scale) - 1 if scale >= 0 else (power - 1) >> -scale
    return index


def value_keys(values: FloatArray, scale: int) -> IntArray:
    """The bucket key of each finite value at `scale`."""
    keys = np.zeros(len(values), np.int64)
    nonzero = values != 0
    if nonzero.any():
        index = bucket_index(np.abs(values[nonzero]), scale) + BUCKET_BASE
        keys[nonzero] = np.where(values[nonzero] > 0, index, -index)
    return keys


def is_bucket(keys: IntArray) -> BoolArray:
    return keys > MAX_KEY


def downscale(keys: IntArray, by: IntArray) -> IntArray:
    """Bucket keys `by` scales coarser (header keys and the zero key stay)."""
    moved = is_bucket(keys) & (keys != 0) & (by > 0)
    if not moved.any():
        return keys
    keys = keys.copy()
    k = keys[moved]
    index = (np.abs(k) - BUCKET_BASE) >> by[moved]
    keys[moved] = np.where(k > 0, index + BUCKET_BASE, -(index + BUCKET_BASE))
    return keys


def counts_by_key(keys: IntArray, counts: FloatArray) -> tuple[IntArray, FloatArray]:
    """The counts of equal keys added, sorted by key, those that add up to 0 left out."""
    distinct, where = np.unique(keys, return_inverse=True)
    added = np.asarray(np.bincount(where.ravel(), counts, len(distinct)), np.float64)
    kept = added != 0
    return distinct[kept], added[kept]


def estimates(keys: IntArray, scales: IntArray) -> FloatArray:
    """The value each bucket key stands for: its bucket's harmonic middle (0 for zeros)."""
    index = (np.abs(keys) - BUCKET_BASE).astype(np.float64)
    step = 2.0 ** (-scales.astype(np.float64))
    with np.errstate(over="ignore", under="ignore"):
        lower = np.exp2(index * step)
        # 2LU / (L + U) as 2L / (1 + L/U): L * U itself overflows above 1e154 and underflows
        # to 0 below 1e-154, and the top bucket's U is beyond the largest float
        middle = lower * (2 / (1 + np.exp2(-step)))
    return np.where(keys == 0, 0.0, np.sign(keys) * middle)


def build(
    group: IntArray, values: FloatArray, weights: FloatArray, scale: int = STATSD_SCALE
) -> tuple[IntArray, IntArray, FloatArray]:
    """One sketch per distinct `group` of the values (each counted `weights` times), as rows
    (group, key, value) sorted by (group, key); values must be finite."""
    keys = value_keys(values, scale)
    order = np.lexsort((keys, group))
    group, keys, values, weights = group[order], keys[order], values[order], weights[order]
    firsts = _starts(group)
    buckets = _starts(group, keys)
    groups = group[firsts]
    header_values = (
        np.full(len(groups), float(scale)),
        np.add.reduceat(values * weights, firsts),
        np.minimum.reduceat(values, firsts),
        np.maximum.reduceat(values, firsts),
    )
    number = np.cumsum(_change(group)) - 1
    counts = np.add.reduceat(weights, buckets)
    return assemble(groups, header_values, number[buckets], keys[buckets], counts)


def combine(
    label: IntArray, keys: IntArray, values: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """Merge sketches into one per distinct `label` (every row of a sketch carries the label of
    the sketch it merges into): rows (label, key, value) sorted by (label, key), each merged
    sketch at the coarsest scale among its parts."""
    if not len(keys):
        return label, keys, values
    first = np.flatnonzero(keys == SCALE_KEY)
    return _combine(first, label[first], keys, values)


def _combine(
    first: IntArray, sketch_label: IntArray, keys: IntArray, values: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """`combine` of the sketches starting at rows `first`, each merged into its label."""
    labels, group = np.unique(sketch_label, return_inverse=True)
    groups = len(labels)
    scales = values[first].astype(np.int64)
    coarsest = np.full(groups, MAX_SCALE, np.int64)
    np.minimum.at(coarsest, group, scales)
    lows = np.full(groups, np.inf)
    np.minimum.at(lows, group, values[first + 2])
    highs = np.full(groups, -np.inf)
    np.maximum.at(highs, group, values[first + 3])
    headers = (
        coarsest.astype(np.float64),
        np.bincount(group, values[first + 1], groups).astype(np.float64, copy=False),
        lows,
        highs,
    )
    bucket = np.flatnonzero(is_bucket(keys))
    per_sketch = _per_sketch(bucket, first)
    bucket_keys = keys[bucket]
    by = scales - coarsest[group]
    if bool((by > 0).any()):
        bucket_keys = downscale(bucket_keys, np.repeat(by, per_sketch))
    out_group, out_keys, counts = _add_buckets(
        group, per_sketch, bucket_keys, values[bucket], groups
    )
    return assemble(labels, headers, out_group, out_keys, counts)


def merge_by(
    major: IntArray, minor: IntArray, keys: IntArray, values: FloatArray
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Merge whole sketches (rows of each in key order, its scale row first) into one per
    (major, minor) of their rows, e.g. (series, bucket): rows sorted by (major, minor, key).
    Sketches are ordered as wholes, so a sketch alone in its (major, minor) costs a copy."""
    if not len(keys):
        return major, minor, keys, values
    starts, _ = _sketches(keys)
    return merge_sketches(starts, major[starts], minor[starts], keys, values)


def merge_sketches(
    starts: IntArray, major: IntArray, minor: IntArray, keys: IntArray, values: FloatArray
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """`merge_by` of the sketches starting at rows `starts` (every row of `keys` in one),
    given the (major, minor) of each sketch: only sketches are ordered, never rows."""
    lengths = np.diff(np.append(starts, len(keys)))
    order = np.lexsort((minor, major))
    first = starts[order]
    new = _change(major[order], minor[order])
    if new.all():
        if bool((order[1:] > order[:-1]).all()):  # in order already: nothing to move
            return np.repeat(major, lengths), np.repeat(minor, lengths), keys, values
        moved = lengths[order]
        rows = rows_of(first, moved)
        row_major, row_minor = np.repeat(major[order], moved), np.repeat(minor[order], moved)
        return row_major, row_minor, keys[rows], values[rows]
    merged_into = np.empty(len(starts), np.int64)
    merged_into[order] = np.cumsum(new) - 1
    label, keys, values = _combine(starts, merged_into, keys, values)
    heads = order[new]
    return major[heads][label], minor[heads][label], keys, values


def latest_rows(sid: IntArray, ts: IntArray, keys: IntArray) -> IntArray:
    """The rows, in write order and sketches whole, of the last sketch written for each
    (sid, ts), which replaces the earlier ones whole: row numbers sorted by (sid, ts, key)."""
    starts, lengths = _sketches(keys)
    order = np.lexsort((ts[starts], sid[starts]))  # stable: among twins the last is the latest
    first = starts[order]
    last = np.append(_change(sid[first], ts[first])[1:], True)
    return rows_of(first[last], lengths[order][last])


def summary(
    label: IntArray, keys: IntArray, values: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per sketch (rows of each label one sketch, merged, in key order): label, count, sum,
    min, max."""
    starts = np.flatnonzero(keys == SCALE_KEY)
    counts = np.where(is_bucket(keys), values, 0.0)
    count = np.add.reduceat(counts, starts) if len(starts) else np.empty(0)
    return label[starts], count, values[starts + 1], values[starts + 2], values[starts + 3]


def quantiles(
    label: IntArray, keys: IntArray, values: FloatArray, q: float
) -> tuple[IntArray, FloatArray]:
    """The `q` quantile (0..1) of each merged sketch as numpy's default percentile of the
    values places it: rank h = q * (count - 1), between the values of ranks floor(h) and
    floor(h) + 1 (each its bucket's estimate), clamped to the sketch's min and max."""
    found_label, estimate, _ = exact_quantiles(label, keys, values, q)
    return found_label, estimate


def exact_quantiles(
    label: IntArray, keys: IntArray, values: FloatArray, q: float
) -> tuple[IntArray, FloatArray, bool]:
    """`quantiles`, and whether the bucket counts are whole numbers, none negative, summing
    below 2^53: then every running count is exact, and a sketch's quantile is the same
    whichever sketches are beside it."""
    first = np.flatnonzero(keys == SCALE_KEY)
    if not len(first):
        return label[first], np.empty(0), True
    bucket = np.flatnonzero(is_bucket(keys))
    counts = values[bucket]
    cumulative = np.cumsum(counts)
    exact = not len(counts) or (
        float(cumulative[-1]) < 2.0**53
        and float(counts.min()) >= 0
        and bool((counts == np.floor(counts)).all())
    )
    per_sketch = _per_sketch(bucket, first)
    if exact:  # running counts are exact: a sketch's total is the difference at its ends
        ends = np.concatenate([[0.0], cumulative])[np.cumsum(per_sketch)]
        total = np.diff(np.concatenate([[0.0], ends]))
    else:  # added in row order, one sketch at a time, as ever
        total = np.bincount(np.repeat(np.arange(len(first)), per_sketch), counts, len(first))
    before = np.concatenate([[0.0], np.cumsum(total)[:-1]])
    rank, low, upper = ranks(total, q)
    scales = values[first].astype(np.int64)

    def at(rank_in_sketch: FloatArray) -> FloatArray:
        if not len(bucket):  # no sketch holds a value: each quantile is NaN (interpolate)
            return np.zeros(len(first))
        found = np.searchsorted(cumulative, before + rank_in_sketch, side="right")
        return estimates(keys[bucket[np.minimum(found, len(bucket) - 1)]], scales)

    estimate = interpolate(
        at(low), at(upper), rank, low, values[first + 2], values[first + 3], total
    )
    return label[first], estimate, exact


def ranks(total: FloatArray, q: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The rank h = q * (count - 1) of the `q` quantile of sketches of `total` counts, and the
    ranks of the two values it lies between: floor(h), and floor(h) + 1 within the sketch."""
    rank = q * np.maximum(total - 1, 0.0)
    low = np.floor(rank)
    return rank, low, np.minimum(low + 1, np.maximum(total - 1, 0.0))


def interpolate(
    below: FloatArray,
    above: FloatArray,
    rank: FloatArray,
    low: FloatArray,
    lowest: FloatArray,
    highest: FloatArray,
    total: FloatArray,
) -> FloatArray:
    """Quantiles at `rank` between the values of ranks `low` and `low + 1` (`below`, `above`),
    clamped to each sketch's min and max; NaN for a sketch of no values."""
    # (1 - f) below + f above: above - below overflows when they are huge of opposite signs
    f = rank - low
    estimate = np.clip((1 - f) * below + f * above, lowest, highest)
    return np.where(total > 0, estimate, np.nan)


def _add_buckets(
    group: IntArray, per_sketch: IntArray, keys: IntArray, counts: FloatArray, groups: int
) -> tuple[IntArray, IntArray, FloatArray]:
    """Counts of equal (group, key) added, sorted by (group, key), of sketches whose bucket
    rows (`per_sketch` of each, in key order) come one sketch after the other, sketch i merging
    into `group[i]`: by counting into a dense table when the keys span a range about as small
    as the rows, else by sorting."""
    if not len(keys):
        return keys, keys, counts
    ends = np.cumsum(per_sketch)
    some = per_sketch > 0
    low = int(keys[(ends - per_sketch)[some]].min())  # a sketch's first bucket is its lowest
    span = int(keys[ends[some] - 1].max()) - low + 1
    if groups * span <= 4 * len(keys) + 65_536:
        cell = keys + np.repeat(group * span - low, per_sketch)
        occupied = np.zeros(groups * span, np.bool_)
        occupied[cell] = True
        used = np.flatnonzero(occupied)
        added = np.bincount(cell, counts, groups * span)[used].astype(np.float64, copy=False)
        return used // span, used % span + low, added
    row_group = np.repeat(group, per_sketch)
    order = np.lexsort((keys, row_group))
    row_group, keys = row_group[order], keys[order]
    starts = _starts(row_group, keys)
    return row_group[starts], keys[starts], np.add.reduceat(counts[order], starts)


def assemble(
    labels: IntArray,
    headers: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    bucket_group: IntArray,
    bucket_keys: IntArray,
    bucket_counts: FloatArray,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Rows of the sketches of `labels` (sorted), each its header rows then its bucket rows,
    which come sorted by (group number, key); placed without sorting."""
    width = len(HEADER_KEYS)
    per_group = np.bincount(bucket_group, minlength=len(labels)) + width
    begins = np.cumsum(per_group) - per_group
    total = int(per_group.sum())
    label = np.repeat(labels, per_group)
    keys = np.empty(total, np.int64)
    values = np.empty(total, np.float64)
    header_rows = (begins[:, None] + np.arange(width)).ravel()
    keys[header_rows] = np.tile(np.asarray(HEADER_KEYS, np.int64), len(labels))
    values[header_rows] = np.column_stack(headers).ravel()
    first_bucket = np.searchsorted(bucket_group, np.arange(len(labels)))
    bucket_rows = begins[bucket_group] + width + np.arange(len(bucket_group))
    bucket_rows -= first_bucket[bucket_group]
    keys[bucket_rows] = bucket_keys
    values[bucket_rows] = bucket_counts
    return label, keys, values


def _per_sketch(bucket: IntArray, first: IntArray) -> IntArray:
    """How many of the sorted rows `bucket` each sketch (starting at rows `first`) holds."""
    return np.diff(np.append(np.searchsorted(bucket, first), len(bucket)))


def _sketches(keys: IntArray) -> tuple[IntArray, IntArray]:
    """Where each sketch of whole sketches' rows starts, and how many rows it has."""
    starts = np.flatnonzero(keys == SCALE_KEY)
    return starts, np.diff(np.append(starts, len(keys)))


def rows_of(starts: IntArray, lengths: IntArray) -> IntArray:
    """Row numbers of the runs [start, start + length), in the given order."""
    total = int(lengths.sum())
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)


def _change(*columns: IntArray) -> BoolArray:
    """True where a row's key differs from the previous row's (and at row 0)."""
    n = len(columns[0])
    change = np.zeros(n, np.bool_)
    if n:
        change[0] = True
        for column in columns:
            change[1:] |= column[1:] != column[:-1]
    return change


def _starts(*columns: IntArray) -> IntArray:
    return np.flatnonzero(_change(*columns))
