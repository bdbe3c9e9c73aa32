"""Queries over known data in a real store (embedded, InfluxDB, VictoriaMetrics): aggregates,
groups, filters, tiers. VictoriaMetrics rolls up at read time: its tiers answer as the others'
after Shipboard's aggregator ran."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aggregator.query import QueryRequest, QueryResult, run_query
from aggregator.scheduler import RollupScheduler
from storage.base import Store
from storage.records import NS_PER_MS
from storage.victoria import VictoriaStore
from tests.aggregator.conftest import HOUR, MIN, NOW, TIERS, S
from tests.backends import QUERY_BACKENDS, StoreOpener

NOW_MS = NOW // NS_PER_MS
PER_MINUTE_C = {"mean": 2.5, "min": 0.0, "max": 5.0, "sum": 15.0, "count": 6.0, "last": 5.0}


def query(store: Store, **params: str) -> QueryResult:
    request = QueryRequest.from_params({"metric": "cpu", **params}, NOW, 1500)
    return run_query(store, TIERS, request)


def by_tags(result: QueryResult) -> dict[str, list[tuple[int, float]]]:
    return {
        ",".join(f"{k}={v}" for k, v in sorted(s.tags.items())): list(
            zip(s.ts_ms.tolist(), s.values.tolist(), strict=True)
        )
        for s in result.series
    }


@pytest.fixture(params=QUERY_BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    """As the package's, with VictoriaMetrics too."""
    opener = StoreOpener(request, request.param, tmp_path, TIERS)
    yield opener
    opener.close()


def roll_up_everything(store: Store, now_ns: int = NOW) -> RollupScheduler:
    """Run Shipboard's aggregator until every tier is up to date (on VictoriaMetrics, which
    rolls up at read time, it has nothing to do: it is not run)."""
    scheduler = RollupScheduler(store, TIERS, grace_ns=0)
    if isinstance(store, VictoriaStore):
        return scheduler
    for _ in range(20):
        scheduler.run_once(now_ns)
    assert store.watermark("1m") == now_ns - now_ns % MIN
    return scheduler


def minutes_ms(start_ns: int, count: int, step_ns: int = MIN) -> list[int]:
    return [(start_ns + i * step_ns) // NS_PER_MS for i in range(count)]


@pytest.mark.parametrize(("agg", "value"), sorted(PER_MINUTE_C.items()))
def test_each_aggregate_per_minute_from_raw(store, agg, value):
    result = query(store, tags="host:c", **{"from": "-15m"}, step="1m", agg=agg)
    assert result.step_ms == 60_000
    assert by_tags(result) == {
        "host=c,service=db": [(t, value) for t in minutes_ms(NOW - 15 * MIN, 15)]
    }


def test_raw_tier_for_steps_below_a_minute(store):
    result = query(store, tags="host:c", **{"from": "-2m"}, step="30s")
    assert result.tier == "raw"
    # c is 0,1,2 in the first half of each minute and 3,4,5 in the second.
    assert by_tags(result)["host=c,service=db"] == list(
        zip(minutes_ms(NOW - 2 * MIN, 4, 30 * S), [1.0, 4.0, 1.0, 4.0], strict=True)
    )


def test_group_by_adds_sums_and_counts_and_takes_the_latest_last(store):
    results = {
        agg: by_tags(query(store, **{"from": "-5m"}, step="1m", agg=agg, group_by="service"))
        for agg in ("mean", "min", "max", "sum", "count", "last")
    }
    first = {group: points[0][1] for group, points in results["mean"].items()}
    assert first == {"service=web": 2.0, "service=db": 2.5, "service=": 10.0}
    web = {agg: points["service=web"][0][1] for agg, points in results.items()}
    # a is 1 and b is 3, six points each; b's points come 5 s after a's, so last is b's.
    assert web == {"mean": 2.0, "min": 1.0, "max": 3.0, "sum": 24.0, "count": 12.0, "last": 3.0}
    assert all(len(points) == 5 for points in results["mean"].values())


def test_group_by_keeps_metrics_apart(store):
    result = query(store, metric="*", **{"from": "-1m"}, step="1m", group_by="service")
    groups = {(s.metric, tuple(s.tags.items())): s.values.tolist() for s in result.series}
    assert groups == {
        ("cpu", (("service", ""),)): [10.0],
        ("cpu", (("service", "db"),)): [2.5],
        ("cpu", (("service", "web"),)): [2.0],
        ("mem", (("service", ""),)): [7.0],
    }


@pytest.mark.parametrize(
    ("params", "hosts"),
    [
        ({"tags": "host:[ab]"}, ["a", "b"]),
        ({"tags": "service:w*"}, ["a", "b"]),
        ({"tags": "service:!web"}, ["c", "d"]),
        ({"tags": "host:a,service:web"}, ["a"]),
        ({"tags": "host:zzz"}, []),
        ({"metric": "c?u"}, ["a", "b", "c", "d"]),
        ({"metric": "*"}, ["a", "a", "b", "c", "d"]),
        ({"metric": "mem"}, ["a"]),
        ({"metric": "disk"}, []),
    ],
)
def test_metric_and_tag_filters(store, params, hosts):
    result = query(store, **{"from": "-1m"}, step="1m", **params)
    assert sorted(s.tags["host"] for s in result.series) == hosts


def test_max_points_raises_the_step(store):
    result = query(store, tags="host:c", **{"from": "-2h"}, max_points="10", agg="count")
    assert (result.step_ms, result.tier) == (15 * 60_000, "1m")
    assert by_tags(result)["host=c,service=db"] == [
        (t, 90.0) for t in minutes_ms(NOW - 2 * HOUR, 8, 15 * MIN)
    ]


@pytest.mark.parametrize(("agg", "per_minute"), sorted(PER_MINUTE_C.items()))
def test_rollup_tiers_answer_like_raw(store, agg, per_minute):
    roll_up_everything(store)
    scale = 5 if agg in ("sum", "count") else 1
    five = query(store, tags="host:c", **{"from": "-2h"}, step="5m", agg=agg)
    assert five.tier == "1m"
    assert by_tags(five)["host=c,service=db"] == [
        (t, per_minute * scale) for t in minutes_ms(NOW - 2 * HOUR, 24, 5 * MIN)
    ]
    hourly = query(store, tags="host:c", **{"from": "-2h"}, step="1h", agg=agg)
    scale = 60 if agg in ("sum", "count") else 1
    assert hourly.tier == "1h"
    assert by_tags(hourly)["host=c,service=db"] == [
        (t, per_minute * scale) for t in minutes_ms(NOW - 2 * HOUR, 2, HOUR)
    ]


@pytest.mark.parametrize(
    ("span", "tier", "step", "buckets", "last_bucket"),
    [
        ("-1h", "raw", 5 * S, 360, NOW - 10 * S),  # c has a point every 10 s
        ("-7d", "10m", 10 * MIN, 12, NOW - 10 * MIN),
        ("-30d", "10m", 30 * MIN, 4, NOW - 30 * MIN),
    ],
)
def test_tier_choice_over_long_ranges(store, span, tier, step, buckets, last_bucket):
    roll_up_everything(store)
    result = query(store, tags="host:c", **{"from": span}, agg="count")
    assert (result.tier, result.step_ms) == (tier, step // NS_PER_MS)
    points = by_tags(result)["host=c,service=db"]
    assert len(points) == buckets
    assert sum(v for _, v in points) == (360 if span == "-1h" else 720)
    assert points[-1][0] == last_bucket // NS_PER_MS


def test_values_stay_float64_and_times_int64(store):
    result = query(store, tags="host:a", **{"from": "-3m"}, step="1m")
    (series,) = result.series
    assert series.ts_ms.dtype == np.int64
    assert series.values.dtype == np.float64
    assert series.metric == "cpu"
    assert series.tags == {"host": "a", "service": "web"}
