"""A query's percentiles per step bucket and group, read from the merged sketches of a span:
from the sketches packed (as the embedded store keeps them at rest, or packed from the rows of
another store) when their counts are whole, as StatsD's are; else merged by rows as read
(`aggregator.sketch_rollups`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aggregator.sketch_cache import Answers
from aggregator.sketch_rollups import packed_quantile_rows, quantile_rows, regroup_sketches
from aggregator.tiered import read_packed_sketches, read_sketches
from storage.base import StoreReader
from storage.records import Series, Tier
from storage.sketch_packs import PackedSketches, PackedSketchReader


def step_quantiles(
    store: StoreReader,
    tiers: Sequence[Tier],
    tier: Tier,
    series: Sequence[Series],
    group_of: dict[Series, int],
    groups: Sequence[Series],
    span: tuple[int, int],
    step_ns: int,
    q: float,
) -> tuple[Answers, bool]:
    """The `q` quantile of every (group, step bucket) of [span) of `series` (series s in group
    `group_of[s]`), sorted, and whether each depends on its bucket's sketches alone."""
    args = (store, tiers, tier, series, *span, step_ns)
    rows = None
    if isinstance(store, PackedSketchReader):
        packed = read_packed_sketches(*args)
    else:  # a store of rows (InfluxDB): read once, packed here
        rows = read_sketches(*args)
        packed = PackedSketches.of(rows)
    mapping = np.fromiter((group_of[s] for s in packed.series), np.int32, len(packed.series))
    answers = packed_quantile_rows(packed, mapping, groups, step_ns, q)
    if answers is not None:
        return answers, True
    rows = read_sketches(*args) if rows is None else rows
    mapping = np.fromiter((group_of[s] for s in rows.series), np.int32, len(rows.series))
    return quantile_rows(regroup_sketches(rows, mapping, groups, step_ns), q)
