"""Series as PromQL selects them: the store's raw points of every matching series, in ms.

A selector's points are read once per query, for the whole window its evaluations look at;
each evaluation then takes its instant sample (the latest within the lookback) or its range by
binary search, as Prometheus' engine does (v2 semantics: both ends of a range included).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from aggregator.promql.names import (
    NAME,
    Labels,
    format_labels,
    label_value,
    prometheus_label,
    series_labels,
)
from aggregator.promql.regex_literals import literal_alternatives
from aggregator.promql.syntax import LabelMatcher
from storage.base import StoreReader, TagIndex, series_with
from storage.records import NS_PER_MS, Series
from storage.series_index import sort_key
from storage.stale_markers import MARKED_TAG, STALE_METRIC, marker_series

LOOKBACK_MS = 5 * 60 * 1000  # Prometheus' default --query.lookback-delta


class EvalError(ValueError):
    """A query that parsed but cannot be answered (Prometheus' `execution` error)."""


class QueryTimeout(EvalError):
    """A query past its time (Prometheus' `timeout` error)."""

    def __init__(self) -> None:
        super().__init__("query timed out in expression evaluation")


@dataclass(frozen=True, slots=True)
class Points:
    """One series' points, ts in ms, ascending and unique. Lists rather than arrays: every
    step takes a few points by bisection, where numpy's per-call cost would dominate."""

    labels: Labels
    ts: list[int]
    values: list[float]
    stale: list[int] = field(default_factory=list)  # the series' stale markers, ms ascending

    def latest(self, at_ms: int, lookback_ms: int = LOOKBACK_MS) -> int | None:
        """The index of the last point at or before `at_ms` and within the lookback, unless a
        stale marker came at or after it (the series went away)."""
        i = bisect.bisect_right(self.ts, at_ms) - 1
        if i < 0 or self.ts[i] < at_ms - lookback_ms:
            return None
        if self.stale:
            j = bisect.bisect_right(self.stale, at_ms) - 1
            if j >= 0 and self.stale[j] >= self.ts[i]:
                return None
        return i

    def window(self, first_ms: int, last_ms: int) -> Points:
        """The points with first_ms <= ts <= last_ms."""
        lo = bisect.bisect_left(self.ts, first_ms)
        hi = bisect.bisect_right(self.ts, last_ms, lo)
        return Points(self.labels, self.ts[lo:hi], self.values[lo:hi])


def matching_series(store: StoreReader, matchers: Sequence[LabelMatcher]) -> list[Series]:
    """Every stored series whose Prometheus labels the matchers all match."""
    by_name = [m for m in matchers if m.name == NAME]
    others = [m for m in matchers if m.name != NAME]
    # Labels held to a few values, none empty: tag pairs the store's tag index looks up.
    wanted = [(m.name, values) for m in others if (values := _values_of(m)) is not None]
    found = []
    for metric in store.metrics("*"):
        labels = series_labels(Series(metric))
        if not all(m.matches(label_value(labels, NAME)) for m in by_name):
            continue
        for series in _candidates(store, metric, wanted):
            labels = series_labels(series)
            if all(m.matches(label_value(labels, m.name)) for m in others):
                found.append(series)
    return found


def _values_of(matcher: LabelMatcher) -> frozenset[str] | None:
    """The values `matcher` holds its label to, if a few and none empty: an `=`'s, or those of
    an `=~` whose regex is literals (`h1|h2`, as Grafana writes a variable)."""
    if matcher.op == "=":
        values: frozenset[str] | None = frozenset((matcher.value,))
    elif matcher.op == "=~":
        values = literal_alternatives(matcher.value)
    else:
        return None
    return values if values and "" not in values else None


def _candidates(
    store: StoreReader, metric: str, wanted: Sequence[tuple[str, frozenset[str]]]
) -> list[Series]:
    """The series of `metric`, sorted, that may have the `wanted` label values: those with
    the tag pairs. A label that more than one tag key spells (`a.b` and `a_b`) is left to the
    check of every candidate, as are all but the fewest of the labels held to several values."""
    if not wanted or not isinstance(store, TagIndex):
        return store.series(metric)
    spelled: dict[str, list[str]] = {}
    for key in store.tag_keys(metric):
        spelled.setdefault(prometheus_label(key), []).append(key)
    pairs: list[tuple[str, str]] = []
    choices: list[tuple[str, frozenset[str]]] = []
    for name, values in wanted:
        keys = spelled.get(name, [])
        if not keys:
            return []  # the label is absent ("") from every series of the metric
        if len(keys) == 1 and len(values) == 1:
            pairs.append((keys[0], next(iter(values))))
        elif len(keys) == 1:
            choices.append((keys[0], values))
    if not choices:
        return store.series_with(metric, pairs) if pairs else store.series(metric)
    key, values = min(choices, key=lambda choice: len(choice[1]))
    found = {s for value in values for s in store.series_with(metric, [*pairs, (key, value)])}
    return sorted(found, key=sort_key)


def load(
    store: StoreReader, matchers: Sequence[LabelMatcher], first_ms: int, last_ms: int
) -> list[Points]:
    """The points in [first_ms, last_ms] of every matching series, sorted by labels, with their
    stale markers there (`storage.stale_markers`)."""
    series = matching_series(store, matchers)
    if not series:
        return []
    markers = _markers(store, series)
    read = [*series, *markers]
    samples = store.read(read, first_ms * NS_PER_MS, (last_ms + 1) * NS_PER_MS)
    bounds = np.searchsorted(samples.index, np.arange(len(read) + 1))

    def ms_of(i: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        ts, values = samples.ts_ns[lo:hi] // NS_PER_MS, samples.values[lo:hi]
        if len(ts) > 1:  # points closer than a ms: the last of each ms, as a re-send would
            last = np.append(ts[1:] != ts[:-1], True)
            ts, values = ts[last], values[last]
        return ts, values

    stale = {markers[m]: ms_of(len(series) + m)[0].tolist() for m in range(len(markers))}
    loaded: dict[Labels, Points] = {}
    origin: dict[Labels, Series] = {}
    for i, one in enumerate(series):
        ts, values = ms_of(i)
        labels = series_labels(one)
        if labels in origin:
            raise EvalError(
                f"the series {origin[labels]} and {one} have the same Prometheus labels "
                f"{format_labels(labels)}; rename one of them"
            )
        origin[labels] = one
        marked = stale.get(marker_series(one), [])
        loaded[labels] = Points(labels, ts.tolist(), values.tolist(), marked)
    return [loaded[labels] for labels in sorted(loaded)]


def _markers(store: StoreReader, series: Sequence[Series]) -> list[Series]:
    """The hidden series holding stale markers of any of `series`."""
    metrics = {s.metric for s in series}
    wanted = {marker_series(s) for s in series}
    return [
        marker
        for metric in sorted(metrics)
        for marker in series_with(store, STALE_METRIC, [(MARKED_TAG, metric)])
        if marker in wanted
    ]


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector."""

    labels: Labels
    value: float


Vector = list[Sample]
