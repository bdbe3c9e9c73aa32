"""Latency sketches as Prometheus' native histograms: `histogram_quantile(0.99,
rate(http_latency[5m]))`, summed `by`/`without` or not, and `histogram_count`/`histogram_sum`.

A sketch (`storage/sketches.py`) is a native histogram's buckets as they are: base-2
exponential at scale s, bucket i of OpenTelemetry's numbering (Prometheus' i + 1) holding
(2^(i/2^s), 2^((i+1)/2^s)], exact zeros in a zero bucket of threshold 0. Shipboard keeps one
sketch per flush, the observations of that interval; PromQL sees the series as the cumulative
histogram they add up to, as Prometheus holds one. So `rate(h[5m])` and `increase(h[5m])` at t
are the sketches after the first in [t - 5m, t] up to the last, merged, scaled by Prometheus'
extrapolation (2.42 does not stop it at a counter's zero for histograms): the last cumulative
histogram minus the first, as Prometheus computes it. A window of sketches of several scales
merges at the coarsest of them. Quantiles interpolate linearly within the bucket the rank falls
in, as Prometheus 2.42's `histogramQuantile` does.

Only these forms read sketches: a sketch series selected alone, or under any other function,
holds no float samples (and answers nothing), where Prometheus would answer a histogram.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aggregator.promql.functions import extrapolation
from aggregator.promql.names import Labels, format_labels, series_labels
from aggregator.promql.series import EvalError, matching_series
from aggregator.promql.syntax import LabelMatcher
from storage.base import StoreReader
from storage.records import NS_PER_MS, RAW, FloatArray, IntArray
from storage.sketches import (
    BUCKET_BASE,
    MAX_KEY,
    SCALE_KEY,
    SUM_KEY,
    counts_by_key,
    downscale,
)


@dataclass(frozen=True, slots=True)
class Histogram:
    """A float histogram: bucket keys (storage.sketches', ascending: negative buckets from
    the largest magnitude, zeros, positive buckets), their counts, the count and the sum."""

    scale: int
    keys: IntArray
    counts: FloatArray
    count: float
    sum: float

    def scaled(self, factor: float) -> Histogram:
        return Histogram(
            self.scale, self.keys, self.counts * factor, self.count * factor, self.sum * factor
        )


def added(histograms: Sequence[Histogram]) -> Histogram:
    """The sum of `histograms` (one at least), at the coarsest scale among them."""
    if len(histograms) == 1:
        return histograms[0]
    scale = min(h.scale for h in histograms)
    keys, counts = counts_by_key(
        np.concatenate([_at_scale(h.keys, h.scale, scale) for h in histograms]),
        np.concatenate([h.counts for h in histograms]),
    )
    count, total = 0.0, 0.0
    for h in histograms:
        count += h.count
        total += h.sum
    return Histogram(scale, keys, counts, count, total)


def quantile(q: float, h: Histogram) -> float:
    """Prometheus 2.42's histogramQuantile: the bucket where the rank is reached, and a
    linear interpolation within it."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if h.count == 0 or math.isnan(q) or not len(h.keys):
        return math.nan
    rank = q * h.count
    reached = np.cumsum(h.counts)  # in bucket order, one addition at a time
    i = min(int(np.searchsorted(reached, rank, side="left")), len(reached) - 1)
    lower, upper = _bounds(int(h.keys[i]), h.scale)
    count = min(float(reached[i]), h.count)
    if count < rank:
        return upper
    in_bucket = float(h.counts[i])
    return lower + (upper - lower) * ((rank - (count - in_bucket)) / in_bucket)


def _bounds(key: int, scale: int) -> tuple[float, float]:
    """A bucket's lower and upper bound (the zero bucket's are 0)."""
    if key == 0:
        return 0.0, 0.0
    index = abs(key) - BUCKET_BASE
    low, high = _power(index, scale), _power(index + 1, scale)
    return (low, high) if key > 0 else (-high, -low)


def _power(index: int, scale: int) -> float:
    """2^(index / 2^scale) as Prometheus' getBound: 2^(fraction) times a power of two."""
    if scale <= 0:
        return math.ldexp(1.0, index << -scale)
    whole, fraction = divmod(index, 1 << scale)
    return math.ldexp(2.0 ** (fraction / (1 << scale)), whole)


def _at_scale(keys: IntArray, scale: int, target: int) -> IntArray:
    return downscale(keys, np.full(len(keys), scale - target, np.int64))


@dataclass(frozen=True, slots=True)
class SketchSeries:
    """One series' sketches in ms order: sketch j's bucket rows are keys/counts[rows[j]:
    rows[j + 1]]; its scale and sum beside."""

    labels: Labels
    ts: list[int]
    scales: IntArray
    sums: FloatArray
    rows: IntArray
    keys: IntArray
    counts: FloatArray

    def increase(self, start_ms: int, end_ms: int, is_rate: bool) -> Histogram | None:
        """rate() or increase() over [start_ms, end_ms]; None with fewer than 2 sketches."""
        lo = bisect.bisect_left(self.ts, start_ms)
        hi = bisect.bisect_right(self.ts, end_ms, lo)
        if hi - lo < 2:
            return None
        scales = self.scales[lo:hi]
        scale = int(scales.min())
        first, last = int(self.rows[lo + 1]), int(self.rows[hi])
        keys = self.keys[first:last]
        if (scales != scale).any():
            lengths = np.diff(self.rows[lo + 1 : hi + 1])
            keys = downscale(keys, np.repeat(scales[1:] - scale, lengths))
        keys, counts = counts_by_key(keys, self.counts[first:last])
        count = float(self.counts[first:last].sum())
        h = Histogram(scale, keys, counts, count, float(self.sums[lo + 1 : hi].sum()))
        window = self.ts[lo:hi]
        return h.scaled(extrapolation(window, start_ms, end_ms, is_rate))


def load_sketches(
    store: StoreReader, matchers: Sequence[LabelMatcher], first_ms: int, last_ms: int
) -> list[SketchSeries]:
    """The raw sketches in [first_ms, last_ms] of every matching series that has any, those of
    one ms merged (two flushes' observations), sorted by labels."""
    series = matching_series(store, matchers)
    if not series:
        return []
    rows = store.read_sketches(RAW, series, first_ms * NS_PER_MS, (last_ms + 1) * NS_PER_MS)
    if not len(rows):
        return []
    starts = np.flatnonzero(rows.keys == SCALE_KEY)
    bounds = np.searchsorted(rows.index[starts], np.arange(len(rows.series) + 1))
    found: dict[Labels, SketchSeries] = {}
    for i, one in enumerate(rows.series):  # the reader's order, which its index follows
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        if lo == hi:
            continue
        labels = series_labels(one)
        if labels in found:
            raise EvalError(
                f"two series have the same Prometheus labels {format_labels(labels)}; "
                "rename one of them"
            )
        first, end = int(starts[lo]), int(starts[hi]) if hi < len(starts) else len(rows)
        found[labels] = _sketch_series(
            labels, starts[lo:hi] - first, rows.ts_ns[first:end], rows.keys[first:end],
            rows.values[first:end],
        )  # fmt: skip
    return [found[labels] for labels in sorted(found)]


def _sketch_series(
    labels: Labels, starts: IntArray, ts_ns: IntArray, keys: IntArray, values: FloatArray
) -> SketchSeries:
    """One series' rows (each sketch's header rows, then its buckets) as a SketchSeries;
    sketches of one ms (two flushes') are one, at the coarser scale of the two."""
    is_start = np.zeros(len(keys), np.bool_)
    is_start[starts] = True
    sketch_of = np.cumsum(is_start) - 1  # each row's sketch
    ms = ts_ns[starts] // NS_PER_MS
    first = np.append(True, ms[1:] != ms[:-1])
    group = np.cumsum(first) - 1
    row_group = group[sketch_of]
    n = int(group[-1]) + 1
    own_scales = values[starts].astype(np.int64)
    scales = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(scales, group, own_scales)
    is_sum = keys == SUM_KEY
    sums = np.asarray(np.bincount(row_group[is_sum], values[is_sum], n), np.float64)
    bucket = keys > MAX_KEY
    by = (own_scales[sketch_of] - scales[row_group])[bucket]
    counts = np.bincount(row_group[bucket], minlength=n)
    return SketchSeries(
        labels,
        ms[first].tolist(),
        scales,
        sums,
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        downscale(keys[bucket], by),
        values[bucket],
    )
