"""What the dashboards read: panel queries through the aggregator, annotations from the control DB.

Everything here is synchronous and read-only; Dash callbacks call it directly.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aggregator.errors import QueryError
from aggregator.query import QueryRequest, QueryResult, ResultSeries, TagFilter, run_query
from annotations.control.db import ControlDB
from annotations.control.notes import Annotation, list_annotations
from dashboards.spec import Catalog, Dashboard, Overlay, Panel, Source, load_catalog, substitute
from storage.base import StoreReader, tag_values
from storage.records import NS_PER_MS, Tier

ALL = "*"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The visible range as typed (`-1h`, `now`, ISO, unix ms) and resolved to epoch ns."""

    start: str
    end: str
    start_ns: int
    end_ns: int

    @property
    def is_live(self) -> bool:
        """Whether the range ends now, so new points keep arriving."""
        return self.end.strip() == "now"


@dataclass
class Board:
    """The dashboards' view of Shipboard: the store, the control DB and the dashboard files."""

    store: StoreReader
    tiers: tuple[Tier, ...]
    control: ControlDB | None
    folder: Path | None
    max_points: int
    clock: Callable[[], int] = time.time_ns
    _catalog: tuple[tuple[tuple[str, float], ...], Catalog] | None = field(default=None)

    def catalog(self) -> Catalog:
        """The dashboards, reloaded when a file in the folder changed (edits show on reload)."""
        stamp: tuple[tuple[str, float], ...] = ()
        if self.folder is not None and self.folder.is_dir():
            stamp = tuple((p.name, p.stat().st_mtime) for p in sorted(self.folder.glob("*.yaml")))
        if self._catalog is None or self._catalog[0] != stamp:
            self._catalog = (stamp, load_catalog(self.folder))
        return self._catalog[1]

    def dashboard(self, slug: str) -> Dashboard | None:
        return self.catalog().dashboards.get(slug)

    def query(
        self,
        panel: Panel,
        variables: Mapping[str, str],
        span: TimeRange,
        *,
        step_ns: int | None = None,
        max_points: int | None = None,
    ) -> QueryResult:
        """The panel's series over `span`, at most `max_points` (and the board's limit) per
        series, at `step_ns` or a step chosen for the points."""
        if span.start_ns >= span.end_ns:
            raise QueryError("from", "must be before to")
        points = self.max_points if max_points is None else min(max_points, self.max_points)
        own = Source(panel.metric, panel.tags, panel.agg, panel.group_by)
        result = self._run(own, variables, span, step_ns, points)
        if not panel.also:
            return result
        # Every source on the panel's step, so that their buckets line up on the graph.
        step_ns = result.step_ms * NS_PER_MS
        found = list(result.series)
        for source in panel.also:
            found.extend(self._source_series(source, variables, span, step_ns, points))
        return QueryResult(tuple(found), result.step_ms, result.tier)

    def _run(
        self,
        source: Source,
        variables: Mapping[str, str],
        span: TimeRange,
        step_ns: int | None,
        points: int,
    ) -> QueryResult:
        filters = tuple(
            TagFilter.of(key, value)
            for key, raw in source.tags
            if (value := substitute(raw, dict(variables))) != ALL
        )
        request = QueryRequest(
            source.metric,
            filters,
            span.start_ns,
            span.end_ns,
            step_ns,
            source.agg,
            tuple(source.group_by),
            max(1, points),
            self.clock(),
        )
        return run_query(self.store, self.tiers, request)

    def _source_series(
        self,
        source: Source,
        variables: Mapping[str, str],
        span: TimeRange,
        step_ns: int,
        points: int,
    ) -> list[ResultSeries]:
        """`scale * metric / ratio_of + offset` of one `also` source, per group."""
        found = list(self._run(source, variables, span, step_ns, points).series)
        if source.ratio_of is not None:
            below = self._run(source.ratio_of, variables, span, step_ns, points).series
            by_tags = {_key(s): s for s in below}
            found = [_divided(s, by_tags[_key(s)]) for s in found if _key(s) in by_tags]
        return [
            ResultSeries(s.metric, s.tags, s.ts_ms, s.values * source.scale + source.offset)
            for s in found
            if len(s.ts_ms)
        ]

    def annotations(
        self, overlays: Sequence[Overlay], variables: Mapping[str, str], span: TimeRange
    ) -> list[Annotation]:
        """Annotations of `overlays` overlapping `span`, oldest first, each listed once."""
        if self.control is None or not overlays:
            return []
        kinds = sorted({o.kind for o in overlays})
        found = list_annotations(self.control, span.start_ns, span.end_ns, kinds=kinds)
        wanted = [
            (o.kind, [(k, substitute(v, dict(variables))) for k, v in o.tags]) for o in overlays
        ]
        return [a for a in found if any(_matches(a, kind, tags) for kind, tags in wanted)]

    def tag_values(self, metrics: Sequence[str], tag: str) -> list[str]:
        """The values `tag` takes among the series of `metrics`: a variable's choices."""
        return sorted({v for metric in metrics for v in tag_values(self.store, metric, tag)})


def _key(series: ResultSeries) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(series.tags.items()))


def _divided(top: ResultSeries, below: ResultSeries) -> ResultSeries:
    """`top / below` at the buckets both have, a bucket whose divisor is 0 left out."""
    _, mine, theirs = np.intersect1d(top.ts_ms, below.ts_ms, return_indices=True)
    keep = below.values[theirs] != 0
    mine, theirs = mine[keep], theirs[keep]
    return ResultSeries(
        top.metric, top.tags, top.ts_ms[mine], top.values[mine] / below.values[theirs]
    )


def _matches(annotation: Annotation, kind: str, tags: list[tuple[str, str]]) -> bool:
    if annotation.kind != kind:
        return False
    # `*` (a variable set to All) matches an annotation without the tag too.
    return all(
        value == ALL or fnmatch.fnmatchcase(annotation.tags.get(key, ""), value)
        for key, value in tags
    )
