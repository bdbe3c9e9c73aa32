"""OTLP exponential histograms as the store's latency sketches (`storage.sketches`).

OTLP's buckets are the sketches' own (bucket i of scale s holds (b^i, b^(i+1)], b = 2^(2^-s)),
so a point's buckets become sketch rows without re-bucketing: a point at scale 6
(`STATSD_SCALE`) or coarser keeps its scale, one at a finer scale has its buckets merged exactly
into scale 6 (bucket i into i >> (s - 6)), which bounds a sketch's rows and keeps every sketch
of a metric mergeable at the StatsD timers' 0.54% whatever scale each exporter chose.

A cumulative histogram is stored as its increase since the stream's previous export, so that a
step's percentile is of the values recorded in that step: the last export of each stream (one
series) is kept, and a changed start time, or a count that went down, is a reset whose export
counts whole. States are taken only once the write is durable (`commit`), so an export retried
after a failed write counts once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from opentelemetry.proto.metrics.v1.metrics_pb2 import ExponentialHistogramDataPoint

from collector.errors import ParseError
from storage.records import FloatArray, IntArray, Series, Sketches
from storage.sketches import (
    BUCKET_BASE,
    HEADER_KEYS,
    STATSD_SCALE,
    counts_by_key,
    downscale,
    estimates,
)

MIN_OTLP_SCALE, MAX_OTLP_SCALE = -10, 20
MAX_STREAMS = 100_000  # past this, the stream least recently exported is forgotten


@dataclass(frozen=True, slots=True)
class Histogram:
    """Buckets as sketch keys at `scale` (sorted, counts non-zero), with sum, min and max, and
    the point's start and time."""

    scale: int
    keys: IntArray
    counts: FloatArray
    sum: float
    min: float
    max: float
    start_ns: int
    time_ns: int

    def rows(self) -> tuple[IntArray, FloatArray]:
        """The sketch's rows: header (scale, sum, min, max), then its buckets in key order."""
        keys = np.concatenate([np.asarray(HEADER_KEYS, np.int64), self.keys])
        header = np.asarray([self.scale, self.sum, self.min, self.max], np.float64)
        return keys, np.concatenate([header, self.counts])


def from_point(point: ExponentialHistogramDataPoint, metric: str, time_ns: int) -> Histogram:
    """The point's buckets at min(its scale, 6); sum, min and max from the buckets where the
    point has none."""
    if not MIN_OTLP_SCALE <= point.scale <= MAX_OTLP_SCALE:
        raise ParseError(
            "bad_scale",
            metric,
            f"scale {point.scale} is outside OTLP's {MIN_OTLP_SCALE}..{MAX_OTLP_SCALE}",
        )
    positive = np.asarray(point.positive.bucket_counts, np.float64)
    negative = np.asarray(point.negative.bucket_counts, np.float64)
    return from_buckets(
        metric,
        point.scale,
        (point.positive.offset + np.arange(len(positive)), positive),
        (point.negative.offset + np.arange(len(negative)), negative),
        float(point.zero_count),
        (
            point.sum if point.HasField("sum") else None,
            point.min if point.HasField("min") else None,
            point.max if point.HasField("max") else None,
        ),
        (point.start_time_unix_nano, time_ns),
    )


def from_buckets(
    metric: str,
    scale: int,
    positive: tuple[IntArray, FloatArray],
    negative: tuple[IntArray, FloatArray],
    zero_count: float,
    stats: tuple[float | None, float | None, float | None],
    times: tuple[int, int],
) -> Histogram:
    """A histogram of buckets by OpenTelemetry's index (bucket i holds (b^i, b^(i+1)]) at
    `scale`, kept at min(scale, 6); its sum, min and max (None: from the buckets); its start
    and time."""
    kept = min(scale, STATSD_SCALE)
    shift = scale - kept
    (positive_index, positive_counts), (negative_index, negative_counts) = positive, negative
    keys, counts = counts_by_key(
        np.concatenate(
            [
                -(BUCKET_BASE + (negative_index >> shift)),
                [0],
                BUCKET_BASE + (positive_index >> shift),
            ]
        ).astype(np.int64),
        np.concatenate([negative_counts, [zero_count], positive_counts]),
    )
    low, high = _bounds(keys, kept)
    total, least, most = stats
    total = _estimated_sum(keys, counts, kept) if total is None else total
    least = low if least is None else least
    most = high if most is None else most
    if not np.isfinite([total, least, most]).all():
        raise ParseError("not_finite", metric, "sum, min and max must be finite")
    return Histogram(kept, keys, counts, total, least, most, *times)


def increase(now: Histogram, before: Histogram) -> Histogram | None:
    """`now` less `before` at the coarser of their scales; None when a count went down (a
    reset). Min and max are the cumulative ones narrowed to the increase's buckets."""
    scale = min(now.scale, before.scale)
    now_keys = downscale(now.keys, np.full(len(now.keys), now.scale - scale))
    before_keys = downscale(before.keys, np.full(len(before.keys), before.scale - scale))
    keys, counts = counts_by_key(
        np.concatenate([now_keys, before_keys]), np.concatenate([now.counts, -before.counts])
    )
    if (counts < 0).any():
        return None
    low, high = _bounds(keys, scale)
    return Histogram(
        scale,
        keys,
        counts,
        now.sum - before.sum,
        max(now.min, low),
        min(now.max, high),
        now.start_ns,
        now.time_ns,
    )


class CumulativeStreams:
    """The last export of each cumulative stream, by series; used from one thread at a time."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self._last: dict[Series, Histogram] = {}
        self._limit = limit

    def increase(
        self, series: Series, point: Histogram, pending: dict[Series, Histogram]
    ) -> Histogram | None:
        """What `point` adds to its stream (itself, after a reset or on first sight), or None
        when nothing: no new value, or an export no later than the last one (re-sent). The new
        state goes into `pending`, for `commit`."""
        before = pending.get(series) or self._last.get(series)
        if before is not None and before.start_ns == point.start_ns:
            if point.time_ns <= before.time_ns:
                return None
            pending[series] = point
            added = increase(point, before)
            if added is not None:
                return added if len(added.keys) else None
        pending[series] = point
        return point if len(point.keys) else None

    def increases(
        self, histograms: list[tuple[Series, Histogram]]
    ) -> tuple[Sketches, dict[Series, Histogram]]:
        """What each of `histograms` adds to its stream, as sketch rows, and the states to
        commit once they are stored."""
        pending: dict[Series, Histogram] = {}
        added = [(s, a) for s, h in histograms if (a := self.increase(s, h, pending)) is not None]
        return sketch_rows(added), pending

    def commit(self, pending: dict[Series, Histogram]) -> None:
        for series, point in pending.items():
            self._last.pop(series, None)  # re-inserted last: the dict is in export order
            self._last[series] = point
        for stale in list(self._last)[: max(len(self._last) - self._limit, 0)]:
            del self._last[stale]


def sketch_rows(sketches: list[tuple[Series, Histogram]]) -> Sketches:
    """Histograms as the store's sketch rows, each at its own time."""
    if not sketches:
        return Sketches.empty()
    series = tuple(dict.fromkeys(s for s, _ in sketches))
    position = {s: i for i, s in enumerate(series)}
    rows = [histogram.rows() for _, histogram in sketches]
    lengths = [len(keys) for keys, _ in rows]
    return Sketches(
        series,
        np.repeat([position[s] for s, _ in sketches], lengths).astype(np.int32),
        np.repeat([h.time_ns for _, h in sketches], lengths).astype(np.int64),
        np.concatenate([keys for keys, _ in rows]),
        np.concatenate([values for _, values in rows]),
    )


def _bounds(keys: IntArray, scale: int) -> tuple[float, float]:
    """The lowest and highest value the buckets can hold (0 and 0 when there are none)."""
    if not len(keys):
        return 0.0, 0.0
    step = 2.0**-scale

    def edge(key: int, upper: bool) -> float:
        if key == 0:
            return 0.0
        index = abs(key) - BUCKET_BASE
        # the magnitude bound farther from zero: the upper edge of a positive bucket's values,
        # the lower edge of a negative one's
        farther = upper == (key > 0)
        with np.errstate(over="ignore"):
            magnitude = min(float(np.exp2((index + farther) * step)), sys.float_info.max)
        return magnitude if key > 0 else -magnitude

    return edge(int(keys[0]), False), edge(int(keys[-1]), True)


def _estimated_sum(keys: IntArray, counts: FloatArray, scale: int) -> float:
    middles = estimates(keys, np.full(len(keys), scale, np.int64))
    return float(np.clip((counts * middles).sum(), -sys.float_info.max, sys.float_info.max))
