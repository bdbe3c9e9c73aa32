"""Prometheus native histograms in remote write, stored as latency sketches.

A native histogram's buckets are the sketches' own (`storage/sketches.py`): Prometheus' bucket
index i at schema s holds (2^((i-1)/2^s), 2^(i/2^s)], OpenTelemetry's (and the sketches') index
i - 1; schemas finer than 6 are merged into 6, as OTLP's are. Spans and delta-coded counts
(integer histograms) or absolute counts (float histograms) give the buckets; a zero threshold
above 0 is kept as the zero bucket. Prometheus sends cumulative histograms: each is stored as
its increase since the series' previous one (a count that went down is a reset: the histogram
counts whole, as on a series' first sight after Shipboard starts), through OTLP's cumulative
streams, so PromQL's `rate()` over the sketches is Prometheus' own over the histograms. A
histogram whose sum is Prometheus' stale marker is dropped and counted as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from collector.errors import ParseError
from collector.otlp_sketches import Histogram, from_buckets
from storage.records import NS_PER_MS, FloatArray, IntArray
from storage.stale_markers import is_stale

MIN_SCHEMA, MAX_SCHEMA = -4, 8  # Prometheus' exponential schemas
MAX_BUCKETS = 1 << 14  # per side; Prometheus' own limit default is 160 in all
MAX_INDEX = 1 << 31  # the sketches' keys hold bucket indexes within +-2^31


class StaleHistogram(ValueError):
    """A histogram that marks its series as gone (its sum is the stale NaN)."""


def from_native(h: Any, metric: str) -> Histogram:
    """The histogram of a prometheus.Histogram message (`collector.prompb`'s, built at run
    time), at min(schema, 6); ParseError says what is wrong, StaleHistogram that it is a
    stale marker."""
    if _is_stale(h.sum):
        raise StaleHistogram(metric)
    if not MIN_SCHEMA <= h.schema <= MAX_SCHEMA:
        raise ParseError(
            "bad_histogram",
            metric,
            f"native histogram schema {h.schema} is outside Prometheus' "
            f"{MIN_SCHEMA}..{MAX_SCHEMA} (custom buckets are not taken)",
        )
    is_float = h.WhichOneof("count") == "count_float"
    positive = _buckets(metric, h.positive_spans, h.positive_deltas, h.positive_counts, is_float)
    negative = _buckets(metric, h.negative_spans, h.negative_deltas, h.negative_counts, is_float)
    float_zeros = h.WhichOneof("zero_count") == "zero_count_float"
    zeros = h.zero_count_float if float_zeros else h.zero_count_int
    return from_buckets(
        metric,
        h.schema,
        positive,
        negative,
        float(zeros),
        (h.sum, None, None),
        (0, h.timestamp * NS_PER_MS),  # no start time: resets are told by counts going down
    )


def _buckets(
    metric: str,
    spans: Sequence[Any],
    deltas: Sequence[int],
    counts: Sequence[float],
    is_float: bool,
) -> tuple[IntArray, FloatArray]:
    """OpenTelemetry's bucket indexes and counts of one side's spans."""
    lengths = np.asarray([span.length for span in spans], np.int64)
    offsets = np.asarray([span.offset for span in spans], np.int64)
    total = int(lengths.sum())
    values = np.asarray(counts if is_float else np.cumsum(np.asarray(deltas, np.int64)), np.float64)
    if total > MAX_BUCKETS or len(values) != total:
        raise ParseError(
            "bad_histogram",
            metric,
            f"native histogram spans hold {total} buckets and {len(values)} counts are sent"
            if len(values) != total
            else f"native histogram has over {MAX_BUCKETS} buckets",
        )
    if (values < 0).any() or not np.isfinite(values).all():
        raise ParseError("bad_histogram", metric, "native histogram bucket counts must be >= 0")
    # Span k starts `offset` past the end of span k - 1 (the first: at its offset).
    starts = np.cumsum(offsets + np.concatenate([[0], lengths[:-1]]))
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    index = np.repeat(starts, lengths) + within - 1  # Prometheus' i is OpenTelemetry's i + 1
    if len(index) and max(-int(index.min()), int(index.max())) >= MAX_INDEX:
        raise ParseError("bad_histogram", metric, "native histogram bucket index out of range")
    kept = values > 0
    return index[kept], values[kept]


def _is_stale(value: float) -> bool:
    return bool(is_stale(np.asarray([value], np.float64))[0])
