"""`agg=increase` and `agg=rate` of cumulative counters (a Prometheus `*_total`, an OTLP
cumulative sum), through counter resets.

A counter's increase is read per fine bucket of each series (the rows of the finest tier still
holding the range, `counter_tier`; raw points in buckets of a sixtieth of the step or at least a
second) against the previous bucket's last value, then summed per step bucket and per group:

- no reset (its min and last not below the previous last, its last its max): last - previous;
- a reset inside the bucket (its last below its max): the rise to the max before the reset plus
  the last value (the counter started again from 0), exact for one reset per fine bucket whose
  new count stays under the old peak;
- a reset before the bucket's points (its min below the previous last, its last its max): its
  last value, the rise before the reset being unknown.

A series' first bucket counts from its min (its first value), or from the reset inside it.
`rate` is the increase per second of the step.
Summing across a group is Prometheus' `sum(rate(...))`: resets are found per series first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aggregator.rollups import combine
from storage.records import NS_PER_S, FloatArray, IndexArray, IntArray, Rollups, Tier

COUNTER_AGGREGATES = ("increase", "rate")
FINE_PARTS = 60


def counter_tier(tiers: Sequence[Tier], chosen: Tier, start_ns: int, now_ns: int) -> Tier:
    """The finest tier still holding `start_ns` whose width divides the chosen tier's: resets
    are told apart in its rows, not in the step's (a row of 0, 100, 5 and one of 100, 5 look
    alike)."""
    covering = [
        t
        for t in tiers
        if now_ns - t.retention_ns <= start_ns
        and (t.is_raw or (not chosen.is_raw and chosen.width_ns % t.width_ns == 0))
    ]
    return min(covering, key=lambda t: t.width_ns, default=chosen)


def fine_width(step_ns: int) -> int:
    """The raw tier's buckets for resets: the largest step / n (n <= 60) of at least 1 s."""
    for parts in range(FINE_PARTS, 0, -1):
        if step_ns % parts == 0 and step_ns // parts >= NS_PER_S:
            return step_ns // parts
    return step_ns


def increases(rows: Rollups) -> FloatArray:
    """Each row's increase over the previous row of its series (rows one per series and fine
    bucket, sorted by series then time, as `combine` leaves them)."""
    first = np.ones(len(rows), bool)
    first[1:] = rows.index[1:] != rows.index[:-1]
    previous = np.where(first, rows.min, np.roll(rows.last, 1))
    inside = rows.last < rows.max
    before = ~inside & (rows.min < previous)
    rise = rows.last - previous
    # A series' first row with a reset inside: where it started is unknown, so after the reset.
    after = np.where(first, 0.0, np.maximum(rows.max - previous, 0.0)) + rows.last
    rise = np.where(inside, after, rise)
    return np.asarray(np.where(before, rows.last, rise), np.float64)


def counter_buckets(
    rows: Rollups,
    group: IndexArray,
    start_ns: int,
    step_ns: int,
    agg: str,
) -> tuple[IndexArray, IntArray, FloatArray]:
    """(group index, step bucket start, value) of `agg` (`increase` or `rate`), from rows that
    reach back one step before `start_ns` so the first bucket has a previous value; `group`
    maps each series index of `rows` to its group's."""
    merged = combine(rows)
    if not len(merged):
        empty = np.empty(0, np.int64)
        return empty.astype(np.int32), empty, empty.astype(np.float64)
    rise = increases(merged)
    bucket = merged.bucket_ns - merged.bucket_ns % step_ns
    keep = bucket >= start_ns
    index, bucket, rise = group[merged.index[keep]], bucket[keep], rise[keep]
    order = np.lexsort((bucket, index))
    index, bucket, rise = index[order], bucket[order], rise[order]
    starts = np.flatnonzero(
        np.concatenate(([True], (index[1:] != index[:-1]) | (bucket[1:] != bucket[:-1])))
    )
    if not len(starts):
        return index.astype(np.int32), bucket, rise
    total = np.add.reduceat(rise, starts)
    if agg == "rate":
        total = total / (step_ns / NS_PER_S)
    return index[starts].astype(np.int32), bucket[starts], total


def window_increases(rows: Rollups, group: IndexArray, start_ns: int) -> dict[int, float]:
    """Each group's increase over the rows from `start_ns` on (rows reaching back one fine
    bucket, so the window's first has a previous value); `group` as in `counter_buckets`."""
    merged = combine(rows)
    if not len(merged):
        return {}
    rise = increases(merged)
    keep = merged.bucket_ns >= start_ns
    groups = group[merged.index[keep]]
    present = np.unique(groups)
    totals = np.zeros(int(present.max()) + 1 if len(present) else 0)
    np.add.at(totals, groups, rise[keep])
    return {int(g): float(totals[g]) for g in present.tolist()}
