"""One value per group over a whole time window: what an alerting rule compares to its
threshold (the query engine's tiers, rows and merges, with the window as a single bucket)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aggregator.errors import QueryError
from aggregator.query import QueryRequest, TagFilter, match_series, read_rows
from aggregator.rollups import AGGREGATES, regroup
from storage.base import StoreReader
from storage.records import Series, Tier

GroupKey = tuple[tuple[str, str], ...]
"""A group's `group_by` tags as sorted (key, value) pairs; a missing tag reads as ""."""

_ONE_BUCKET_NS = 2**62  # wider than every stored time: the whole window merges into one row


def window_tier(tiers: Sequence[Tier], start_ns: int, now_ns: int) -> Tier:
    """The finest tier whose retention still covers `start_ns` (raw normally), else the
    coarsest."""
    covering = [t for t in tiers if now_ns - t.retention_ns <= start_ns]
    if covering:
        return min(covering, key=lambda t: t.width_ns)
    return max(tiers, key=lambda t: t.width_ns)


def group_key(series: Series, group_by: Sequence[str]) -> GroupKey:
    return tuple(sorted((key, series.tag(key) or "") for key in set(group_by)))


def window_values(
    store: StoreReader,
    tiers: Sequence[Tier],
    metric: str,
    tag_filters: tuple[TagFilter, ...],
    agg: str,
    group_by: Sequence[str],
    start_ns: int,
    end_ns: int,
    *,
    now_ns: int | None = None,
) -> dict[GroupKey, float]:
    """The `agg` of each group's points in [start, end): every matching series (of the metric
    or metric glob, passing all filters) adds into the group of its `group_by` tags, so no
    `group_by` gives one group, `()`. Groups without points (or a NaN aggregate) are left out.

    Reads the finest tier that still holds `start_ns` at `now_ns` (default `end_ns`); from a
    rollup tier the window starts on that tier's bucket boundary at or before `start_ns`."""
    if agg not in AGGREGATES:
        raise QueryError("agg", f"{agg!r} is not one of {', '.join(AGGREGATES)}")
    if start_ns >= end_ns:
        raise QueryError("window", f"must be longer than 0 (from={start_ns}, to={end_ns})")
    now_ns = end_ns if now_ns is None else now_ns
    tier = window_tier(tiers, start_ns, now_ns)
    request = QueryRequest(metric, tag_filters, start_ns, end_ns, None, agg, (), 1, now_ns)
    series = match_series(store, request)
    if not series:
        return {}
    if tier.is_raw:
        # At most two rows per series, merged below; for `last` a row per point, so the latest
        # point of a group wins whichever series it is in.
        width_ns = 1 if agg == "last" else end_ns - start_ns
    else:
        width_ns = tier.width_ns
        start_ns -= start_ns % width_ns
    rows = read_rows(store, tiers, tier, series, start_ns, end_ns, width_ns)
    keys: dict[GroupKey, int] = {}
    mapping = np.fromiter(
        (keys.setdefault(group_key(s, group_by), len(keys)) for s in rows.series),
        np.int32,
        len(rows.series),
    )
    groups = [Series.of(metric, key) for key in keys]
    merged = regroup(rows, mapping, groups, _ONE_BUCKET_NS)
    values = AGGREGATES[agg](merged)
    names = list(keys)
    return {
        names[index]: value
        for index, value in zip(merged.index.tolist(), values.tolist(), strict=True)
        if not math.isnan(value)
    }
