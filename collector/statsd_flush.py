"""Per-flush StatsD statistics: output series names and vectorised timer summaries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from collector.statsd import COUNTER, SET, TIMER
from storage.records import FloatArray, IndexArray, Series

SlotOutputs = tuple[Series, ...]
TIMER_FIELDS = ("count", "sum", "mean", "lower", "upper", "median", "std")


def percentile_suffix(percentile: float) -> str:
    """`90` -> `p90`, `99.9` -> `p99_9` (etsy's clean_pct)."""
    return "p" + f"{percentile:g}".replace(".", "_")


def output_names(kind: int, series: Series, percentiles: Sequence[float]) -> SlotOutputs:
    """The series a slot reports, in the column order of its flush values."""

    def sub(field: str) -> Series:
        return Series(f"{series.metric}.{field}", series.tags)

    if kind == COUNTER:
        return sub("count"), sub("rate")
    if kind == SET:
        return (sub("count"),)
    if kind == TIMER:
        fields = TIMER_FIELDS + tuple(percentile_suffix(p) for p in percentiles)
        return tuple(sub(f) for f in fields)
    return (series,)


def timer_stats(
    slots: IndexArray, values: FloatArray, weights: FloatArray, percentiles: Sequence[float]
) -> tuple[IndexArray, FloatArray, NDArray[np.bool_]]:
    """Per slot with values: a row of TIMER_FIELDS then one column per percentile, and which
    cells exist (etsy skips a percentile that covers no value).

    `count` sums the weights (1 / sample rate); the rest use the values actually received.
    A percentile p is the largest of the round(p / 100 * n) smallest values, as in etsy."""
    order = np.lexsort((values, slots))
    slots, values, weights = slots[order], values[order], weights[order]
    unique, start, n = np.unique(slots, return_index=True, return_counts=True)
    last = start + n - 1
    total = np.add.reduceat(values, start)
    mean = total / n
    deviation = values - np.repeat(mean, n)
    std = np.sqrt(np.add.reduceat(deviation * deviation, start) / n)
    mid = start + n // 2
    median = np.where(
        n % 2 == 1, values[mid], (values[np.maximum(mid - 1, start)] + values[mid]) / 2
    )
    columns = [
        np.add.reduceat(weights, start),
        total,
        mean,
        values[start],
        values[last],
        median,
        std,
    ]
    valid = np.ones((len(unique), len(TIMER_FIELDS) + len(percentiles)), np.bool_)
    for j, p in enumerate(percentiles):
        k = np.where(n == 1, 1, np.floor(p / 100 * n + 0.5).astype(np.int64))
        columns.append(values[start + np.maximum(k, 1) - 1])
        valid[:, len(TIMER_FIELDS) + j] = k > 0
    return unique.astype(np.int32), np.column_stack(columns), valid
