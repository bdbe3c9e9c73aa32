"""Did a metric get worse? One metric over two sides (time windows, or the arms of a flag)
from the store, compared by the test its kind calls for, with a verdict that noise does not flip.

Kinds and tests (`MetricSpec.kind`):

- ratio (`http.errors.count/http.requests.count`): the summed numerator over the summed
  denominator on each side, a binomial comparison of two proportions; the interval of the
  ratio of proportions is the log-ratio's normal interval (0.5 added to every count when one
  is 0). Samples are the denominators.
- count (`*.count`, `*_total`, or `:sum`): the window's sum as a rate per second of its side,
  the exact Poisson rate test conditional on the total (binomial, `scipy.stats.binomtest`),
  its Clopper-Pearson interval turned into one of the rate ratio. Samples are the counts.
- quantile (`http.latency:p99`): the q quantile of each side's sketches merged into one, with
  the order-statistic interval: the values at ranks q n -+ z sqrt(n q (1 - q)) of the merged
  sketch. The change's interval is the widest the two sides' intervals allow (after's low over
  before's high, after's high over before's low), so it is significant only when the two
  intervals do not overlap. Samples are the values the sketches counted.
- gauge (anything else): the means of 10 s buckets (or the tier's buckets) on each side,
  Welch's t-test; the interval of the difference of means over before's mean. Samples are the
  buckets with points.

Every interval is at `confidence` (99% by default) for the relative change after / before - 1.
Status, as regressions are increases (errors, latency, CPU):

- `no_data`: a side has no points at all;
- `inconclusive`: a side has fewer than `min_samples`;
- `regressed`: the interval lies above 0 (significant), the change exceeds `max_increase`
  (relative) and after - before exceeds `absolute_floor`;
- `healthy`: a regression is ruled out, the interval's top at most `max_increase` (or the top's
  absolute change at most `absolute_floor`);
- `inconclusive` otherwise: the interval is too wide to tell a regression from noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from aggregator.errors import QueryError
from aggregator.query import QueryRequest, TagFilter, match_series
from aggregator.rollups import AGGREGATES, regroup
from aggregator.sketch_rollups import percentile
from aggregator.tiered import read_rows
from aggregator.window import window_tier, window_values
from aggregator.window_sketches import window_sketch
from storage import sketches
from storage.base import StoreReader
from storage.records import NS_PER_S, Series, Sketches, Tier

GAUGE_BUCKET_NS = 10 * NS_PER_S


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What to compare: a metric, a ratio of two, or a quantile of a metric's sketches."""

    metric: str
    ratio_of: str | None = None  # the denominator of a ratio
    agg: str | None = None  # "p99": a quantile of the merged sketches; "sum", "mean", ...

    @property
    def kind(self) -> str:
        """ratio, quantile, count or gauge."""
        if self.ratio_of is not None:
            return "ratio"
        if self.agg is not None and percentile(self.agg) is not None:
            return "quantile"
        if self.agg == "sum" or self.metric.endswith((".count", "_total")):
            return "count"
        return "gauge"

    @classmethod
    def parse(cls, text: str) -> MetricSpec:
        """`a.count/b.count` (a ratio), `http.latency:p99` (a quantile), `name` or `name:agg`."""
        text = text.strip()
        numerator, slash, denominator = text.partition("/")
        if slash:
            if not numerator.strip() or not denominator.strip() or ":" in text:
                raise QueryError("watch", f"{text!r} is not numerator/denominator")
            return cls(numerator.strip(), denominator.strip())
        metric, colon, agg = text.partition(":")
        metric, agg = metric.strip(), agg.strip()
        if not metric or any(c.isspace() for c in metric):
            raise QueryError("watch", f"{text!r} is not a metric name")
        if not colon:
            return cls(metric)
        if percentile(agg) is None and agg not in AGGREGATES:
            raise QueryError("watch", f"{agg!r} is not pNN or one of {', '.join(AGGREGATES)}")
        return cls(metric, None, agg)

    def label(self) -> str:
        """`http.errors/http.requests`, `http.latency p99`, `cpu.user`."""
        if self.ratio_of is not None:
            return f"{_base(self.metric)}/{_base(self.ratio_of)}"
        if self.agg is not None:
            return f"{self.metric} {self.agg}"
        return self.metric


def _base(metric: str) -> str:
    return metric.removesuffix(".count")


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a comparison: a time window, and the tag filters of an arm."""

    start_ns: int
    end_ns: int
    filters: tuple[TagFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class Comparison:
    spec: MetricSpec
    test: str  # binomial, poisson, quantile, welch
    before: float | None
    after: float | None
    change: float | None  # relative: after / before - 1
    interval: tuple[float, float] | None  # of the change, at the comparison's confidence
    samples: tuple[int, int]  # (before, after)
    status: str  # healthy | regressed | inconclusive | no_data

    def json(self) -> dict[str, Any]:
        return {
            "metric": self.spec.label(),
            "test": self.test,
            "before": self.before,
            "after": self.after,
            "change": self.change,
            "interval": list(self.interval) if self.interval is not None else None,
            "samples": list(self.samples),
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class _Measured:
    """What a test found, before the status is decided."""

    test: str
    before: float | None
    after: float | None
    samples: tuple[int, int]
    interval: tuple[float, float] | None = None  # of after / before - 1


def compare(
    store: StoreReader,
    tiers: Sequence[Tier],
    spec: MetricSpec,
    before: Side,
    after: Side,
    *,
    now_ns: int,
    min_samples: int = 100,
    max_increase: float = 0.2,
    absolute_floor: float = 0.0,
    confidence: float = 0.99,
) -> Comparison:
    """`spec` measured on both sides and judged (module doc)."""
    for side in (before, after):
        if side.start_ns >= side.end_ns:
            raise QueryError("window", f"must be longer than 0 ({side.start_ns}..{side.end_ns})")
    measure = {"ratio": _ratio, "count": _count, "quantile": _quantile, "gauge": _gauge}
    found = measure[spec.kind](store, tiers, spec, before, after, now_ns, confidence)
    change = None
    if found.before is not None and found.after is not None and found.before != 0:
        change = found.after / found.before - 1
    status = _status(found, change, min_samples, max_increase, absolute_floor)
    return Comparison(
        spec, found.test, found.before, found.after, change, found.interval, found.samples, status
    )


def _status(
    found: _Measured,
    change: float | None,
    min_samples: int,
    max_increase: float,
    absolute_floor: float,
) -> str:
    if found.before is None or found.after is None or min(found.samples) == 0:
        return "no_data"
    if min(found.samples) < min_samples or found.interval is None:
        return "inconclusive"
    low, high = found.interval
    rise = found.after - found.before
    relative = change if change is not None else math.inf if rise > 0 else 0.0
    if low > 0 and relative > max_increase and rise > absolute_floor:
        return "regressed"
    if high <= max_increase or high * abs(found.before) <= absolute_floor:
        return "healthy"
    return "inconclusive"


def _z(confidence: float) -> float:
    return float(stats.norm.ppf((1 + confidence) / 2))


def _sum(store: StoreReader, tiers: Sequence[Tier], metric: str, side: Side, now_ns: int) -> float:
    values = window_values(
        store, tiers, metric, side.filters, "sum", (), side.start_ns, side.end_ns, now_ns=now_ns
    )
    return values.get((), 0.0)


def _ratio(
    store: StoreReader,
    tiers: Sequence[Tier],
    spec: MetricSpec,
    before: Side,
    after: Side,
    now_ns: int,
    confidence: float,
) -> _Measured:
    assert spec.ratio_of is not None
    hits = [_sum(store, tiers, spec.metric, side, now_ns) for side in (before, after)]
    totals = [_sum(store, tiers, spec.ratio_of, side, now_ns) for side in (before, after)]
    samples = (round(totals[0]), round(totals[1]))
    if min(totals) <= 0:
        return _Measured("binomial", None, None, samples)
    hits = [min(h, t) for h, t in zip(hits, totals, strict=True)]
    rates = [h / t for h, t in zip(hits, totals, strict=True)]
    # The log of the ratio of proportions, 0.5 added to every count when one is 0.
    add = 0.5 if any(h <= 0 or h >= t for h, t in zip(hits, totals, strict=True)) else 0.0
    (h1, h2), (n1, n2) = [h + add for h in hits], [t + 2 * add for t in totals]
    log_ratio = math.log((h2 / n2) / (h1 / n1))
    spread = _z(confidence) * math.sqrt(max(1 / h1 - 1 / n1 + 1 / h2 - 1 / n2, 0.0))
    interval = (math.exp(log_ratio - spread) - 1, math.exp(log_ratio + spread) - 1)
    return _Measured("binomial", rates[0], rates[1], samples, interval)


def _count(
    store: StoreReader,
    tiers: Sequence[Tier],
    spec: MetricSpec,
    before: Side,
    after: Side,
    now_ns: int,
    confidence: float,
) -> _Measured:
    counts = [round(_sum(store, tiers, spec.metric, side, now_ns)) for side in (before, after)]
    seconds = [(side.end_ns - side.start_ns) / NS_PER_S for side in (before, after)]
    samples = (counts[0], counts[1])
    if min(counts) <= 0:
        return _Measured("poisson", None, None, samples)
    rates = [c / s for c, s in zip(counts, seconds, strict=True)]
    # Given the total, after's count is binomial with p = its share of the time at equal rates.
    ci = stats.binomtest(counts[1], sum(counts)).proportion_ci(confidence, "exact")

    def rate_ratio(p: float) -> float:
        return math.inf if p >= 1 else p / (1 - p) * seconds[0] / seconds[1]

    interval = (rate_ratio(ci.low) - 1, rate_ratio(ci.high) - 1)
    return _Measured("poisson", rates[0], rates[1], samples, interval)


def _quantile(
    store: StoreReader,
    tiers: Sequence[Tier],
    spec: MetricSpec,
    before: Side,
    after: Side,
    now_ns: int,
    confidence: float,
) -> _Measured:
    assert spec.agg is not None
    q = percentile(spec.agg)
    assert q is not None
    z = _z(confidence)
    found = [
        _side_quantile(
            window_sketch(
                store, tiers, spec.metric, side.filters, side.start_ns, side.end_ns, now_ns=now_ns
            ),
            q,
            z,
        )
        for side in (before, after)
    ]
    samples = (found[0][0], found[1][0])
    if min(samples) == 0:
        return _Measured("quantile", None, None, samples)
    (_, value0, low0, high0), (_, value1, low1, high1) = found
    if low0 <= 0 or value0 <= 0:
        return _Measured("quantile", value0, value1, samples)
    return _Measured("quantile", value0, value1, samples, (low1 / high0 - 1, high1 / low0 - 1))


def _side_quantile(merged: Sketches, q: float, z: float) -> tuple[int, float, float, float]:
    """(count, the q quantile, its interval's low and high) of a merged sketch: the interval
    holds the values at ranks q n -+ z sqrt(n q (1 - q))."""
    label = np.zeros(len(merged), np.int64)
    _, count, *_ = sketches.summary(label, merged.keys, merged.values)
    n = float(count.sum())
    if n <= 0:
        return 0, math.nan, math.nan, math.nan
    spread = z * math.sqrt(n * q * (1 - q))
    ranks = (q * n - spread, q * n + spread)
    # `quantiles` reads rank q (n - 1): ask for the quantile each rank is.
    at = [min(max(rank, 0.0), n - 1) / max(n - 1, 1.0) for rank in ranks]
    value, low, high = (
        float(sketches.quantiles(label, merged.keys, merged.values, p)[1][0]) for p in (q, *at)
    )
    return round(n), value, low, high


def _gauge(
    store: StoreReader,
    tiers: Sequence[Tier],
    spec: MetricSpec,
    before: Side,
    after: Side,
    now_ns: int,
    confidence: float,
) -> _Measured:
    means = [_bucket_means(store, tiers, spec.metric, side, now_ns) for side in (before, after)]
    samples = (len(means[0]), len(means[1]))
    if min(samples) == 0:
        return _Measured("welch", None, None, samples)
    mean0, mean1 = (float(m.mean()) for m in means)
    if min(samples) < 2 or mean0 == 0:
        return _Measured("welch", mean0, mean1, samples)
    if float(means[0].std()) == 0 and float(means[1].std()) == 0:
        return _Measured("welch", mean0, mean1, samples, (mean1 / mean0 - 1,) * 2)
    result = stats.ttest_ind(means[1], means[0], equal_var=False)
    ci = result.confidence_interval(confidence)
    scale = abs(mean0)
    return _Measured("welch", mean0, mean1, samples, (ci.low / scale, ci.high / scale))


def _bucket_means(
    store: StoreReader, tiers: Sequence[Tier], metric: str, side: Side, now_ns: int
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The mean of every series' points together in each bucket of the side with points."""
    start_ns, end_ns = side.start_ns, side.end_ns
    tier = window_tier(tiers, start_ns, now_ns)
    width_ns = GAUGE_BUCKET_NS if tier.is_raw else tier.width_ns
    start_ns -= start_ns % width_ns
    request = QueryRequest(metric, side.filters, start_ns, end_ns, None, "mean", (), 1, now_ns)
    series = match_series(store, request)
    if not series:
        return np.empty(0)
    rows = read_rows(store, tiers, tier, series, start_ns, end_ns, width_ns)
    mapping = np.zeros(len(rows.series), np.int32)
    merged = regroup(rows, mapping, (Series.of(metric, ()),), width_ns)
    keep = merged.count > 0
    return np.asarray(merged.sum[keep] / merged.count[keep], np.float64)
