"""Sketches over a whole time window: every matching series' sketches merged into one, what a
verdict or a rollout guard reads a latency quantile (and its order-statistic interval) from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aggregator.query import QueryRequest, TagFilter, match_series
from aggregator.sketch_rollups import regroup_sketches
from aggregator.tiered import read_sketches
from aggregator.window import window_tier
from storage.base import StoreReader
from storage.records import Series, Sketches, Tier

_ONE_BUCKET_NS = 2**62  # wider than every stored time: the whole window merges into one


def window_sketch(
    store: StoreReader,
    tiers: Sequence[Tier],
    metric: str,
    tag_filters: tuple[TagFilter, ...],
    start_ns: int,
    end_ns: int,
    *,
    now_ns: int,
) -> Sketches:
    """One sketch merging the sketches of every series of `metric` passing all filters in
    [start, end) (no rows when there are none), from the finest tier that still holds
    `start_ns` at `now_ns`; from a rollup tier the window starts on its bucket boundary."""
    tier = window_tier(tiers, start_ns, now_ns)
    width_ns = end_ns - start_ns
    if not tier.is_raw:
        width_ns = tier.width_ns
        start_ns -= start_ns % width_ns
    request = QueryRequest(metric, tag_filters, start_ns, end_ns, None, "count", (), 1, now_ns)
    series = match_series(store, request)
    if not series:
        return Sketches.empty()
    found = read_sketches(store, tiers, tier, series, start_ns, end_ns, width_ns)
    mapping = np.zeros(len(found.series), np.int32)
    return regroup_sketches(found, mapping, (Series.of(metric, ()),), _ONE_BUCKET_NS)
