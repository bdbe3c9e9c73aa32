"""Samples that exercise PromQL's edges: counters with resets, jittered and irregular
intervals, series that stop (gone after the 5 m lookback) and start late, a gauge with a gap
longer than the lookback, negative values, and `le` buckets; dotted Shipboard names. Two series
end with Prometheus' stale marker (gone at once, not after the lookback), one of them to come
back later."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aggregator.promql.names import series_labels
from storage.records import NS_PER_MS, Samples, Series
from storage.stale_markers import STALE_NAN_BITS, as_markers, is_stale
from tests.aggregator.promql.truth import Written, jittered

S, MIN = 1000, 60_000
STALE = float(np.array([STALE_NAN_BITS], np.uint64).view(np.float64)[0])
SPAN_MS = 30 * MIN  # the data's length; every point in [base, base + SPAN_MS)


@dataclass(frozen=True)
class Dataset:
    base_ms: int
    series: list[tuple[Series, list[int], list[float]]]

    def written(self) -> list[Written]:
        """As Prometheus names them."""
        return [Written(dict(series_labels(s)), ts, vs) for s, ts, vs in self.series]

    def samples(self) -> Samples:
        """As Shipboard stores them: stale markers as points of their hidden series."""
        points = Samples.from_points(
            (s, t * NS_PER_MS, v) for s, ts, vs in self.series for t, v in zip(ts, vs, strict=True)
        )
        stale = is_stale(points.values)
        return Samples.concat([points.take(~stale), as_markers(points.take(stale))])


def _counter(rng: np.random.Generator, n: int, resets: int = 0) -> list[float]:
    values = np.cumsum(rng.integers(0, 20, n)).astype(float)
    for at in rng.choice(np.arange(1, n), resets, replace=False):
        values[at:] -= values[at] - rng.integers(0, 5)  # a restart from near 0
    return [float(v) for v in values]


def build(base_ms: int, seed: int = 16) -> Dataset:
    rng = np.random.default_rng(seed)
    end = base_ms + SPAN_MS
    series: list[tuple[Series, list[int], list[float]]] = []

    def add(series_: Series, ts: list[int], values: list[float]) -> None:
        series.append((series_, ts, values))

    requests = "http.requests.count"
    ts = jittered(rng, base_ms, end, 15 * S)
    add(Series.of(requests, {"service": "web", "host": "a"}), ts, _counter(rng, len(ts), 2))
    ts = jittered(rng, base_ms, base_ms + 20 * MIN, 10 * S)  # stops 10 min before the end
    add(Series.of(requests, {"service": "web", "host": "b"}), ts, _counter(rng, len(ts), 1))
    ts = jittered(rng, base_ms, base_ms + 17 * MIN, 15 * S)  # its target went away: marked
    values = _counter(rng, len(ts))
    add(Series.of(requests, {"service": "web", "host": "d"}), [*ts, ts[-1] + 15 * S],
        [*values, STALE])  # fmt: skip
    ts = jittered(rng, base_ms + 10 * MIN, end, 30 * S)  # starts late
    add(Series.of(requests, {"service": "db", "host": "c"}), ts, _counter(rng, len(ts)))
    for host in ("a", "b", "c"):  # a gauge, with a 7-minute gap and negative values
        ts = [
            t for t in jittered(rng, base_ms, end, 20 * S) if not 12 * MIN <= t - base_ms < 19 * MIN
        ]
        values = np.round(rng.normal(0, 20, len(ts)), 3).tolist()
        if host == "c":  # marked stale 40 s into the gap, and back after it
            gap = next(i for i, t in enumerate(ts) if t - base_ms >= 19 * MIN)
            ts.insert(gap, base_ms + 12 * MIN + 40 * S)
            values.insert(gap, STALE)
        add(Series.of("node.temp", {"host": host, "service.name": "infra"}), ts, values)
    for service in ("web", "db"):  # a histogram's cumulative buckets, scraped together
        ts = jittered(rng, base_ms, end, 15 * S)
        counts = np.cumsum(rng.integers(0, 10, (len(ts), 4)), axis=0).cumsum(axis=1)
        for column, le in enumerate(("0.1", "0.5", "1", "+Inf")):
            labels = {"service": service, "le": le}
            add(
                Series.of("latency_seconds_bucket", labels),
                ts,
                counts[:, column].astype(float).tolist(),
            )
    ts = list(range(base_ms, end, 60 * S))  # already in Prometheus form, a whole value per minute
    add(Series.of("jobs_total", {"queue": "mail"}), ts, [float(i * 3) for i in range(len(ts))])
    return Dataset(base_ms, series)
