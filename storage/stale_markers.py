"""Prometheus' stale markers, kept as the points of hidden series.

Prometheus writes a stale marker (a NaN of its own bits) when a series goes away: a scrape
target down, a series gone from its page. PromQL then stops taking the series' last point at
once, instead of for the 5-minute lookback. A marker of series `m{tags}` at t is kept as the
point (t, 1) of `__stale__{__metric__=m, tags}`: every store keeps it as any point (InfluxDB
takes no NaN), the store listings leave the `__stale__` metric out, and PromQL reads the markers
of the series it selects beside their points.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from storage.records import FloatArray, Samples, Series

STALE_METRIC = "__stale__"
MARKED_TAG = "__metric__"
STALE_NAN_BITS = 0x7FF0000000000002  # the NaN Prometheus writes when a series goes away


def is_stale(values: FloatArray) -> NDArray[np.bool_]:
    stale: NDArray[np.bool_] = values.view(np.uint64) == np.uint64(STALE_NAN_BITS)
    return stale


def marker_series(series: Series) -> Series:
    """The hidden series holding `series`' stale markers."""
    return Series(STALE_METRIC, tuple(sorted((*series.tags, (MARKED_TAG, series.metric)))))


def as_markers(samples: Samples) -> Samples:
    """Stale markers as the points (t, 1) of their hidden series."""
    series = tuple(marker_series(s) for s in samples.series)
    return Samples(series, samples.index, samples.ts_ns, np.ones(len(samples), np.float64))


def listed(names: list[str]) -> list[str]:
    """Metric names as the listings give them: the markers' hidden metric left out."""
    return [name for name in names if name != STALE_METRIC]
