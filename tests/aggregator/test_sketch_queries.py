"""Percentile queries over sketches on each backend: every tier gives a step bucket the same
answer, `group_by` merges buckets (never averages percentiles), the summaries of a timer's base
name come from its sketches, and a bad percentile is refused with what to fix."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.errors import QueryError
from aggregator.query import QueryRequest, run_query
from aggregator.scheduler import RollupScheduler
from aggregator.sketch_rollups import percentile
from storage.base import Store
from storage.records import Samples, Series, Sketches
from storage.sketches import STATSD_SCALE, build, relative_error
from tests.aggregator.conftest import HOUR, NOW, TIERS
from tests.backends import StoreOpener

WEB_A = Series.of("api.latency", {"host": "a", "service": "web"})
WEB_B = Series.of("api.latency", {"host": "b", "service": "web"})
START = NOW - 2 * HOUR
BOUND = relative_error(STATSD_SCALE)


def flushes(rng: np.random.Generator) -> tuple[Sketches, dict[Series, np.ndarray]]:
    """A sketch every 10 s for two hours for two hosts: b is ten times slower than a."""
    parts: list[Sketches] = []
    sent: dict[Series, list[np.ndarray]] = {WEB_A: [], WEB_B: []}
    for ts in range(START, NOW, 10 * 10**9):
        values = rng.lognormal(3.0, 0.5, 40)
        slow = values * 10
        label, keys, counts = build(
            np.repeat([0, 1], 40), np.concatenate([values, slow]), np.ones(80)
        )
        parts.append(
            Sketches((WEB_A, WEB_B), label.astype(np.int32), np.full(len(keys), ts), keys, counts)
        )
        sent[WEB_A].append(values)
        sent[WEB_B].append(slow)
    return Sketches.concat(parts), {s: np.concatenate(v) for s, v in sent.items()}


def query(agg: str, *, step: str = "1h", group_by: str = "", start: int = START) -> QueryRequest:
    params = {
        "metric": "api.latency",
        "agg": agg,
        "from": str(start // 10**6),
        "to": str(NOW // 10**6),
        "step": step,
        "group_by": group_by,
    }
    return QueryRequest.from_params(params, NOW + 2 * HOUR, 1000)


def answers(
    store: Store, request: QueryRequest
) -> tuple[str, dict[tuple[tuple[str, str], ...], list[float]]]:
    result = run_query(store, TIERS, request)
    return result.tier, {tuple(sorted(s.tags.items())): s.values.tolist() for s in result.series}


@pytest.fixture
def filled(open_store: StoreOpener) -> tuple[Store, dict[Series, np.ndarray]]:
    store = open_store()
    sketches, sent = flushes(np.random.default_rng(5))
    store.write(Samples.empty(), sketches)
    return store, sent


def test_each_tier_gives_a_bucket_the_same_percentiles(filled) -> None:
    store, sent = filled
    before = answers(store, query("p99"))
    assert before[0] == "1h"  # not rolled up yet: read from raw under the 1 h tier's bound
    RollupScheduler(store, TIERS, grace_ns=0).catch_up(NOW + HOUR, 60.0)
    tier, after = answers(store, query("p99"))
    assert tier == "1h"
    assert store.watermark("1h") == NOW + HOUR
    assert after == before[1]
    # 1 m buckets merged to hours give the same numbers as the 1 h rows.
    assert answers(store, query("p99", step="60m")) == (tier, after)
    for series, values in sent.items():
        hourly = after[series.tags]
        for hour, got in enumerate(hourly):
            chunk = values[hour * 360 * 40 : (hour + 1) * 360 * 40]
            assert abs(got / np.quantile(chunk, 0.99) - 1) <= BOUND + 1e-9


def test_group_by_merges_buckets_instead_of_averaging_percentiles(filled) -> None:
    store, sent = filled
    RollupScheduler(store, TIERS, grace_ns=0).catch_up(NOW + HOUR, 60.0)
    everything = np.concatenate(list(sent.values()))
    _, merged = answers(store, query("p50", step="2h", group_by="service"))
    [(key, [value])] = merged.items()
    assert key == (("service", "web"),)
    exact = np.quantile(everything, 0.5)
    assert abs(value / exact - 1) <= BOUND + 1e-9
    _, per_host = answers(store, query("p50", step="2h"))
    average = np.mean([v[0] for v in per_host.values()])
    assert abs(average / exact - 1) > 0.5  # what averaging per-host p50s would have drawn


def test_summaries_of_a_timer_come_from_its_sketches(filled) -> None:
    store, sent = filled
    _, counts = answers(store, query("count", step="2h"))
    _, highs = answers(store, query("max", step="2h"))
    _, means = answers(store, query("mean", step="2h", group_by="service"))
    for series, values in sent.items():
        assert counts[series.tags] == [float(len(values))]
        assert highs[series.tags] == [float(values.max())]
    everything = np.concatenate(list(sent.values()))
    assert means[(("service", "web"),)] == pytest.approx([everything.mean()], rel=1e-12)


@pytest.mark.parametrize(
    ("agg", "q"), [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999), ("p100", 1.0), ("p0.1", 0.001)]
)
def test_percentile_names(agg: str, q: float) -> None:
    assert percentile(agg) == pytest.approx(q)


@pytest.mark.parametrize("agg", ["p0", "p101", "pxx", "p", "p99.", "P99", "p-1", "p1e2"])
def test_a_bad_percentile_is_refused_with_what_to_fix(agg: str) -> None:
    with pytest.raises(QueryError, match="percentile"):
        query(agg)
