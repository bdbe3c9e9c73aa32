"""The query engine: parse a query, pick a tier, read and aggregate series, format the result.

A query reads the coarsest tier that still gives the asked step. Rollup tiers are read up to
their watermark; the tail after it comes from the next finer tier (and so on down to raw), so
the newest minute shows on every graph. Rows are then merged per step bucket and per group
with the rollup fields (`aggregator.rollups.regroup`), and one aggregate is taken per bucket.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from aggregator.counters import (
    COUNTER_AGGREGATES,
    counter_buckets,
    counter_tier,
    fine_width,
)
from aggregator.errors import QueryError
from aggregator.rollups import AGGREGATES, RowParts, aggregate
from aggregator.sketch_cache import Answers, cached_answers
from aggregator.sketch_percentiles import step_quantiles
from aggregator.sketch_rollups import as_rollups, percentile
from aggregator.tiered import read_row_parts, read_rows, read_sketches
from storage.base import StoreReader, series_with
from storage.records import NS_PER_MS, FloatArray, IndexArray, IntArray, Series, Tier
from storage.timeparse import nice_step_ns, parse_duration_ns, parse_time

_GLOB_CHARS = re.compile(r"[*?\[]")
_LATEST_NS = 2**62  # about the year 2116; keeps every sum of times inside int64


@dataclass(frozen=True, slots=True)
class TagFilter:
    """`key:value`, `key:glob*` or `key:!value` (negated; a series without the tag matches)."""

    key: str
    pattern: str
    negate: bool = False

    def matches(self, series: Series) -> bool:
        value = series.tag(self.key)
        found = value is not None and fnmatch.fnmatchcase(value, self.pattern)
        return found != self.negate

    @classmethod
    def of(cls, key: str, pattern: str) -> TagFilter:
        """`key` matching the glob `pattern`; a leading `!` negates it."""
        negate = pattern.startswith("!")
        if not key or not pattern[negate:]:
            raise QueryError("tags", f"{key}:{pattern} is not key:value (e.g. host:web-*)")
        return cls(key, pattern[1:] if negate else pattern, negate)

    @classmethod
    def parse_list(cls, text: str) -> tuple[TagFilter, ...]:
        filters = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, pattern = item.partition(":")
            if not sep or not key or not pattern:
                raise QueryError("tags", f"{item!r} is not key:value (e.g. host:web-*,env:!dev)")
            filters.append(cls.of(key, pattern))
        return tuple(filters)


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """A validated query: which series, which time range, at which step, aggregated how."""

    metric: str
    tag_filters: tuple[TagFilter, ...]
    start_ns: int
    end_ns: int
    step_ns: int | None  # None: auto, (end - start) / max_points rounded to a nice width
    agg: str
    group_by: tuple[str, ...]
    max_points: int
    now_ns: int

    @classmethod
    def from_params(cls, params: Mapping[str, str], now_ns: int, max_points: int) -> QueryRequest:
        """Read `metric tags from to step agg group_by max_points`; QueryError says what to fix."""
        metric = params.get("metric", "").strip()
        if not metric:
            raise QueryError("metric", "required, e.g. metric=cpu.usage_user or metric=cpu.*")
        start_ns = _time(params, "from", "-1h", now_ns)
        end_ns = _time(params, "to", "now", now_ns)
        if start_ns >= end_ns:
            raise QueryError("from", f"must be before to (from={start_ns} ns, to={end_ns} ns)")
        agg = params.get("agg", "mean").strip()
        if agg not in AGGREGATES and agg not in COUNTER_AGGREGATES and percentile(agg) is None:
            names = ", ".join((*AGGREGATES, *COUNTER_AGGREGATES))
            raise QueryError("agg", f"{agg!r} is not one of {names} or a percentile (p99, p99.9)")
        step_text = params.get("step", "auto").strip()
        step_ns = None
        if step_text != "auto":
            try:
                step_ns = parse_duration_ns(step_text)
            except ValueError as error:
                raise QueryError("step", f"{error}, or auto") from None
            if step_ns < NS_PER_MS:
                raise QueryError("step", f"{step_text!r} is below the 1 ms resolution of results")
            if step_ns > _LATEST_NS:
                raise QueryError("step", f"{step_text!r} is longer than a graph can be")
        points = max_points
        if "max_points" in params:
            text = params["max_points"].strip()
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= max_points:
                raise QueryError("max_points", f"must be a whole number from 1 to {max_points}")
            points = int(text)
        group_by = tuple(filter(None, (k.strip() for k in params.get("group_by", "").split(","))))
        return cls(
            metric,
            TagFilter.parse_list(params.get("tags", "")),
            start_ns,
            end_ns,
            step_ns,
            agg,
            group_by,
            points,
            now_ns,
        )


def _time(params: Mapping[str, str], name: str, default: str, now_ns: int) -> int:
    try:
        value = parse_time(params.get(name, default), now_ns)
    except ValueError as error:
        raise QueryError(name, str(error)) from None
    if not 0 <= value < _LATEST_NS:
        raise QueryError(name, "must be between 1970 and 2116")
    return value


@dataclass(frozen=True, slots=True)
class ResultSeries:
    """One line of a graph: bucket start times (unix ms) and one value per bucket."""

    metric: str
    tags: dict[str, str]
    ts_ms: IntArray
    values: FloatArray


@dataclass(frozen=True, slots=True)
class QueryResult:
    series: tuple[ResultSeries, ...]
    step_ms: int
    tier: str


def choose_tier(tiers: Sequence[Tier], request: QueryRequest) -> tuple[Tier, int]:
    """The tier to read and the step to use: the coarsest tier whose width divides the step and
    whose retention still covers `from`. When none does, the finest tier that still covers
    `from` (or else the coarsest), with the step raised to a multiple of its width."""
    span_ns = request.end_ns - request.start_ns
    needed_ns = -(-span_ns // request.max_points)
    step_ns = request.step_ns or nice_step_ns(needed_ns)
    if step_ns < needed_ns:
        step_ns = nice_step_ns(needed_ns)
    covering = [t for t in tiers if request.now_ns - t.retention_ns <= request.start_ns]
    fitting = [t for t in covering if t.is_raw or step_ns % t.width_ns == 0]
    if fitting:
        return max(fitting, key=lambda t: t.width_ns), step_ns
    tier = min(covering, key=_width) if covering else max(tiers, key=_width)
    if tier.is_raw:
        return tier, step_ns
    return tier, -(-step_ns // tier.width_ns) * tier.width_ns


def _width(tier: Tier) -> int:
    return tier.width_ns


def match_series(store: StoreReader, request: QueryRequest) -> list[Series]:
    """Every series of the metric (or metric glob) that passes all tag filters: of those
    with the filters' exact pairs (`key:value`, from the store's tag index), else of all."""
    exact = [f for f in request.tag_filters if not f.negate and not _GLOB_CHARS.search(f.pattern)]
    pairs = tuple((f.key, f.pattern) for f in exact)
    others = [f for f in request.tag_filters if f not in exact]
    if _GLOB_CHARS.search(request.metric):
        metrics = store.metrics(request.metric)
    else:
        metrics = [request.metric]
    candidates = [s for m in metrics for s in series_with(store, m, pairs)]
    return [s for s in candidates if all(f.matches(s) for f in others)]


def run_query(store: StoreReader, tiers: Sequence[Tier], request: QueryRequest) -> QueryResult:
    """Run `request`: at most `max_points` buckets per series (or group), empty ones left out.

    Percentiles come from the merged sketches; `rate` and `increase` from the counters' rows
    (`aggregator.counters`); the other aggregates from rollup rows, and for a series that has
    sketches only (a timer's base name) from its sketches' summaries."""
    tier, step_ns = choose_tier(tiers, request)
    step_ms = step_ns // NS_PER_MS
    series = match_series(store, request)
    if not series:
        return QueryResult((), step_ms, tier.name)
    # Whole buckets only: the first bucket starts on a step boundary at or before `from`.
    start_ns = request.start_ns - request.start_ns % step_ns
    end_ns = request.end_ns
    groups: dict[Series, int] = {}

    def group_numbers(of: Sequence[Series]) -> IndexArray:
        numbers = (groups.setdefault(_group_of(s, request.group_by), len(groups)) for s in of)
        return np.fromiter(numbers, np.int32, len(of))

    q = percentile(request.agg)
    if q is not None:
        numbers = dict(zip(series, group_numbers(series).tolist(), strict=True))

        def quantiles(lo_ns: int, hi_ns: int) -> tuple[Answers, bool]:
            span = (lo_ns, hi_ns)
            return step_quantiles(
                store, tiers, tier, series, numbers, tuple(groups), span, step_ns, q
            )

        key = (q, request.group_by, tuple(series))
        answers = cached_answers(store, tier, key, start_ns, end_ns, step_ns, quantiles)
        index, bucket_ns, values = answers
    elif request.agg in COUNTER_AGGREGATES:
        # A step earlier too, so the first bucket's increase has the value before it.
        fine = counter_tier(tiers, tier, start_ns - step_ns, request.now_ns)
        fine_ns = fine_width(step_ns) if fine.is_raw else fine.width_ns
        rows = read_rows(store, tiers, fine, series, start_ns - step_ns, end_ns, fine_ns)
        mapping = group_numbers(rows.series)
        index, bucket_ns, values = counter_buckets(rows, mapping, start_ns, step_ns, request.agg)
    else:
        parts = read_row_parts(store, tiers, tier, series, (start_ns, end_ns), step_ns)
        bare = _without_rows(parts, series)
        if bare:
            found = read_sketches(store, tiers, tier, bare, start_ns, end_ns, step_ns)
            parts = RowParts([*parts.parts, as_rollups(found)])
        mapping = group_numbers(parts.series)
        index, bucket_ns, values = aggregate(parts, mapping, step_ns, request.agg)
    keep = ~np.isnan(values)
    index, bucket_ns, values = index[keep], bucket_ns[keep], values[keep]
    bounds = np.searchsorted(index, np.arange(len(groups) + 1))
    result = []
    for i, group in enumerate(groups):
        lo, hi = bounds[i], bounds[i + 1]
        if hi > lo:
            ts_ms = bucket_ns[lo:hi] // NS_PER_MS
            result.append(ResultSeries(group.metric, dict(group.tags), ts_ms, values[lo:hi]))
    result.sort(key=lambda s: (s.metric, sorted(s.tags.items())))
    return QueryResult(tuple(result), step_ms, tier.name)


def _without_rows(rows: RowParts, series: Sequence[Series]) -> list[Series]:
    """The `series` with no row in `rows` (marked in a mask: np.unique sorted every row)."""
    has_rows = np.zeros(len(rows.series), np.bool_)
    has_rows[rows.index] = True
    if has_rows.all() and len(rows.series) >= len(series):
        return []
    present = {rows.series[i] for i in np.flatnonzero(has_rows).tolist()}
    return [s for s in series if s not in present]


def _group_of(series: Series, group_by: tuple[str, ...]) -> Series:
    """The group a series adds into: its metric plus the group_by tags ("" when missing)."""
    if not group_by:
        return series
    return Series.of(series.metric, {key: series.tag(key) or "" for key in group_by})


def result_json(result: QueryResult) -> bytes:
    """`{"series": [{"metric", "tags", "points": [[unix_ms, value], ...]}], "step_ms", "tier"}`."""
    return orjson.dumps(
        {
            "series": [
                {
                    "metric": s.metric,
                    "tags": s.tags,
                    "points": _points_json(s.ts_ms, s.values),
                }
                for s in result.series
            ],
            "step_ms": result.step_ms,
            "tier": result.tier,
        }
    )


def _points_json(ts_ms: IntArray, values: FloatArray) -> orjson.Fragment:
    """`[[unix_ms, value], ...]` as orjson writes the pairs, from the two arrays written whole:
    their numbers and the brackets between them laid in one list, joined once. Lists of pairs
    cost more than writing them (and the collector's time, in a process of many objects), and
    joining each pair first a third more than this."""
    if not len(ts_ms):
        return orjson.Fragment(b"[]")
    times, figures = (
        orjson.dumps(np.ascontiguousarray(a), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
        for a in (ts_ms, values)
    )
    parts = [b","] * (4 * len(times))  # time, ",", value, "],[" for each point
    parts[0::4] = times
    parts[2::4] = figures
    parts[3::4] = _BETWEEN_PAIRS * len(times)
    parts[-1] = b"]]"
    return orjson.Fragment(b"[[" + b"".join(parts))


_BETWEEN_PAIRS = [b"],["]


def result_csv(result: QueryResult) -> str:
    """One row per point: `metric,tags,time_ms,time_iso,value`, tags as `k=v;k2=v2`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("metric", "tags", "time_ms", "time_iso", "value"))
    for s in result.series:
        tags = ";".join(f"{k}={v}" for k, v in sorted(s.tags.items()))
        iso = np.datetime_as_string(s.ts_ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
        writer.writerows(
            (s.metric, tags, t, i, repr(v))
            for t, i, v in zip(s.ts_ms.tolist(), iso.tolist(), s.values.tolist(), strict=True)
        )
    return out.getvalue()
