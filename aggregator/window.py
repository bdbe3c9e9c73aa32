"""One value per group over a whole time window: what an alerting rule compares to its
threshold (the query engine's tiers, rows and merges, with the window as a single bucket)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from aggregator.counters import COUNTER_AGGREGATES, fine_width, window_increases
from aggregator.errors import QueryError
from aggregator.query import QueryRequest, TagFilter, match_series
from aggregator.rollups import AGGREGATES, regroup
from aggregator.tiered import read_rows
from storage.base import StoreReader
from storage.records import NS_PER_S, Rollups, Series, Tier

GroupKey = tuple[tuple[str, str], ...]
"""A group's `group_by` tags as sorted (key, value) pairs; a missing tag reads as ""."""

_GLOB_CHARS = re.compile(r"[*?\[]")  # as `TagFilter` patterns have them
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
    cache: WindowCache | None = None,
) -> dict[GroupKey, float]:
    """The `agg` of each group's points in [start, end): every matching series (of the metric
    or metric glob, passing all filters) adds into the group of its `group_by` tags, so no
    `group_by` gives one group, `()`. Groups without points (or a NaN aggregate) are left out.

    Reads the finest tier that still holds `start_ns` at `now_ns` (default `end_ns`); from a
    rollup tier the window starts on that tier's bucket boundary at or before `start_ns`.
    With `cache`, the rows come from the window it read for an earlier call, if any."""
    counter = agg in COUNTER_AGGREGATES
    if agg not in AGGREGATES and not counter:
        known_aggs = ", ".join((*AGGREGATES, *COUNTER_AGGREGATES))
        raise QueryError("agg", f"{agg!r} is not one of {known_aggs}")
    if start_ns >= end_ns:
        raise QueryError("window", f"must be longer than 0 (from={start_ns}, to={end_ns})")
    now_ns = end_ns if now_ns is None else now_ns
    tier = window_tier(tiers, start_ns, now_ns)
    window_ns = end_ns - start_ns
    if counter:
        # A counter's resets are found in fine rows (aggregator.counters), read from one row
        # before the window, so that the window's first row has the value before it.
        width_ns = fine_width(window_ns) if tier.is_raw else tier.width_ns
        start_ns -= start_ns % width_ns
        counted_from_ns, start_ns = start_ns, start_ns - width_ns
    elif tier.is_raw:
        # At most two rows per series, merged below; for `last` a row per point, so the latest
        # point of a group wins whichever series it is in.
        width_ns = 1 if agg == "last" else window_ns
    else:
        width_ns = tier.width_ns
        start_ns -= start_ns % width_ns
    if cache is None:
        request = QueryRequest(metric, tag_filters, start_ns, end_ns, None, agg, (), 1, now_ns)
        series = match_series(store, request)
        if not series:
            return {}
        rows = read_rows(store, tiers, tier, series, start_ns, end_ns, width_ns)
        keys: dict[GroupKey, int] = {}
        mapping = np.fromiter(
            (keys.setdefault(group_key(s, group_by), len(keys)) for s in rows.series),
            np.int32,
            len(rows.series),
        )
        names = list(keys)
    else:
        window = cache.window(store, tiers, tier, metric, start_ns, end_ns, width_ns)
        rows, codes, known = window.select(tag_filters, group_by)
        if not rows.series:
            return {}
        # The groups present, numbered in order of their codes (vectorised: rules see
        # thousands of series a round, and a Python loop over them was most of its time).
        present, inverse = np.unique(codes, return_inverse=True)
        mapping = inverse.astype(np.int32)
        names = [known[code] for code in present.tolist()]
    if counter:
        rises = window_increases(rows, mapping, counted_from_ns)
        per_s = window_ns / NS_PER_S if agg == "rate" else 1.0
        return {names[index]: rise / per_s for index, rise in rises.items()}
    groups = [Series.of(metric, key) for key in names]
    merged = regroup(rows, mapping, groups, _ONE_BUCKET_NS)
    values = AGGREGATES[agg](merged)
    return {
        names[index]: value
        for index, value in zip(merged.index.tolist(), values.tolist(), strict=True)
        if not math.isnan(value)
    }


class WindowCache:
    """What the rules of one evaluation round share: each window's rows of every series of a
    metric, read once, and those series' tags and groups, so that a rule over some of them
    takes its rows instead of reading them again. For one round: a point written after its
    window was read (even one stamped inside it) is not seen, as if it came after the round."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str, int, int, int], _Window] = {}
        self._groups = _GroupCodes()

    def window(
        self,
        store: StoreReader,
        tiers: Sequence[Tier],
        tier: Tier,
        metric: str,
        start_ns: int,
        end_ns: int,
        width_ns: int,
    ) -> _Window:
        """The rows of every series of `metric` (or metric glob) in [start, end) from `tier`,
        rolled up to `width_ns`, as `read_rows` gives them."""
        key = (metric, tier.name, start_ns, end_ns, width_ns)
        window = self._windows.get(key)
        if window is None:
            request = QueryRequest(metric, (), start_ns, end_ns, None, "count", (), 1, end_ns)
            series = match_series(store, request)
            rows = Rollups.empty()
            if series:
                rows = read_rows(store, tiers, tier, series, start_ns, end_ns, width_ns)
            window = self._windows[key] = _Window(rows, self._groups)
        return window


class _GroupCodes:
    """A number for each group key of each `group_by`, and each series' number, shared by the
    windows of a round (the same series turn up in many)."""

    def __init__(self) -> None:
        self.names: dict[tuple[str, ...], list[GroupKey]] = {}
        self._codes: dict[tuple[str, ...], dict[GroupKey, int]] = {}
        self._of_series: dict[tuple[str, ...], dict[Series, int]] = {}

    def of(self, series: Sequence[Series], by: tuple[str, ...]) -> NDArray[np.int64]:
        """The code of each series' group under `by`."""
        names = self.names.setdefault(by, [])
        codes = self._codes.setdefault(by, {})
        known = self._of_series.setdefault(by, {})

        def code(one: Series) -> int:
            found = known.get(one)
            if found is None:
                key = group_key(one, by)
                found = known[one] = codes.setdefault(key, len(codes))
                if found == len(names):
                    names.append(key)
            return found

        return np.fromiter((code(one) for one in series), np.int64, len(series))


class _Window:
    """One window's rows of all of a metric's series, with an index of their tags."""

    def __init__(self, rows: Rollups, groups: _GroupCodes) -> None:
        self._rows = rows
        self._series = tuple(rows.series)
        self._by_tag: dict[str, dict[str, list[int]]] = {}
        self._shared = groups
        self._codes: dict[tuple[str, ...], NDArray[np.int64]] = {}

    def _positions(self, tag_filters: tuple[TagFilter, ...]) -> NDArray[np.intp]:
        """Where the series passing every filter are, in order; a plain `key:value` filter
        (no glob, not negated) is looked up, the others tested series by series."""
        positions: NDArray[np.intp] = np.arange(len(self._series))
        for tag_filter in tag_filters:
            if not tag_filter.negate and not _GLOB_CHARS.search(tag_filter.pattern):
                found = np.array(
                    self._tag_index(tag_filter.key).get(tag_filter.pattern, []), np.intp
                )
                positions = np.intersect1d(positions, found, assume_unique=True)
            else:
                series = self._series
                kept = [p for p in positions.tolist() if tag_filter.matches(series[p])]
                positions = np.array(kept, np.intp)
        return positions

    def _tag_index(self, key: str) -> dict[str, list[int]]:
        index = self._by_tag.get(key)
        if index is None:
            index = self._by_tag[key] = {}
            for position, series in enumerate(self._series):
                value = series.tag(key)
                if value is not None:
                    index.setdefault(value, []).append(position)
        return index

    def select(
        self, tag_filters: tuple[TagFilter, ...], group_by: Sequence[str]
    ) -> tuple[Rollups, NDArray[np.int64], list[GroupKey]]:
        """The rows of the series passing `tag_filters` (those series only, in order), each of
        those series' group code, and the group key of each code."""
        positions = self._positions(tag_filters)
        by = tuple(sorted(set(group_by)))
        codes = self._codes.get(by)
        if codes is None:
            codes = self._codes[by] = self._shared.of(self._series, by)
        names = self._shared.names[by]
        rows = self._rows
        if len(positions) == len(self._series):
            return rows, codes, names
        renumber = np.full(len(self._series) + 1, -1, np.int32)
        renumber[positions] = np.arange(len(positions), dtype=np.int32)
        new_index = renumber[rows.index]
        kept = new_index >= 0
        taken = rows.take(kept)
        subset = Rollups(
            tuple(self._series[p] for p in positions.tolist()),
            new_index[kept],
            taken.bucket_ns,
            taken.min,
            taken.max,
            taken.sum,
            taken.count,
            taken.last,
        )
        return subset, codes[positions], names
