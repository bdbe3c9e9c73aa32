"""agg=increase and agg=rate of cumulative counters through resets, on real stores (both
backends), from raw and from the 1 m tier, against the increase counted point by point."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.counters import fine_width, increases
from aggregator.query import QueryRequest, QueryResult, run_query
from aggregator.window import WindowCache, window_values
from storage.base import Store
from storage.records import NS_PER_MS, Rollups, Samples, Series
from tests.aggregator.conftest import HOUR, MIN, NOW, TIERS, S
from tests.aggregator.test_query_engine import roll_up_everything
from tests.backends import BACKENDS, StoreOpener

START = NOW - HOUR
TS = np.arange(START, NOW, 10 * S, dtype=np.int64)  # a scrape every 10 s
A = Series.of("jobs_total", {"instance": "a", "job": "app"})
B = Series.of("jobs_total", {"instance": "b", "job": "app"})


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    opened = StoreOpener(request, request.param, tmp_path, TIERS)
    yield opened
    opened.close()


def counter(rises: np.ndarray, resets: dict[int, float]) -> np.ndarray:
    """A counter rising by `rises` each scrape, restarting at `resets[i]` at scrape i."""
    values = np.cumsum(rises)
    for i, value in sorted(resets.items()):
        values[i:] = values[i:] - values[i] + value
    return values


def true_increase(values: np.ndarray, ts: np.ndarray, step_ns: int) -> dict[int, float]:
    """Point by point, as Prometheus counts it: a drop is a reset, the new value its increase."""
    found: dict[int, float] = {}
    for i in range(1, len(values)):
        rise = values[i] - values[i - 1] if values[i] >= values[i - 1] else values[i]
        bucket = int(ts[i] - ts[i] % step_ns) // NS_PER_MS
        found[bucket] = found.get(bucket, 0.0) + float(rise)
    return found


def query(store: Store, **params: str) -> QueryResult:
    request = QueryRequest.from_params({"metric": "jobs_total", **params}, NOW, 1500)
    return run_query(store, TIERS, request)


def points(result: QueryResult) -> list[dict[int, float]]:
    return [dict(zip(s.ts_ms.tolist(), s.values.tolist(), strict=True)) for s in result.series]


def write(store: Store, *columns: tuple[Series, np.ndarray]) -> None:
    store.write(
        Samples(
            tuple(s for s, _ in columns),
            np.repeat(np.arange(len(columns), dtype=np.int32), len(TS)),
            np.concatenate([TS] * len(columns)),
            np.concatenate([v for _, v in columns]).astype(np.float64),
        )
    )


def test_increase_and_rate_through_resets_from_raw_and_from_the_1m_tier(opener):
    rng = np.random.default_rng(3)
    a = counter(rng.integers(0, 50, len(TS)).astype(float), {100: 4.0, 250: 0.0})
    b = counter(np.full(len(TS), 6.0), {})
    store = opener()
    write(store, (A, a), (B, b))
    expected = true_increase(a, TS, 5 * MIN)
    # Before the rollups: the 1 m tier's rows all come from raw points.
    first = query(store, tags="instance:a", agg="increase", step="5m", **{"from": "-55m"})
    assert points(first) == [{t: v for t, v in expected.items() if t >= (START + 5 * MIN) // 1e6}]
    raw = query(store, tags="instance:a", agg="increase", step="30s", **{"from": "-55m"})
    assert raw.tier == "raw"
    exact = true_increase(a, TS, 30 * S)
    assert points(raw) == [{t: v for t, v in exact.items() if t >= (START + 5 * MIN) // 1e6}]
    roll_up_everything(store)
    rolled = query(store, tags="instance:a", agg="increase", step="5m", **{"from": "-55m"})
    assert rolled.tier == "1m"
    # One reset per minute at most, each to below the old peak: the 1 m rows count it exactly.
    assert points(rolled) == points(first)
    rate = query(store, tags="instance:a", agg="rate", step="5m", **{"from": "-55m"})
    assert points(rate) == [{t: pytest.approx(v / 300) for t, v in points(first)[0].items()}]
    # Summed across instances after each series' resets: b adds 6 every 10 s, 180 per 5 m.
    summed = query(store, agg="increase", step="5m", group_by="job", **{"from": "-55m"})
    assert points(summed) == [{t: v + 180.0 for t, v in points(first)[0].items()}]


def test_a_reset_inside_a_rollup_bucket_that_climbs_past_the_old_peak_counts_after_it(opener):
    # 100, 110, 120 then a restart at 0 climbing to 500 within one minute: the 1 m row holds
    # min 0 < previous last, last = max: what came before the reset in that minute is unknown.
    values = np.arange(len(TS), dtype=float) * 10
    values[200:] = np.arange(len(TS) - 200) * 100.0
    store = opener()
    write(store, (A, values))
    roll_up_everything(store)
    minute = query(store, agg="increase", step="1m", **{"from": "-30m"})
    raw = query(store, agg="increase", step="30s", **{"from": "-30m"})
    reset_ms = int(TS[200] - TS[200] % MIN) // NS_PER_MS
    assert minute.tier == "1m"
    assert raw.tier == "raw"
    raw_minute = sum(v for t, v in points(raw)[0].items() if reset_ms <= t < reset_ms + 60_000)
    assert points(minute)[0][reset_ms] <= raw_minute


def test_fine_width():
    assert fine_width(MIN) == S
    assert fine_width(5 * MIN) == 5 * S
    assert fine_width(30 * S) == S
    assert fine_width(NS_PER_MS * 500) == NS_PER_MS * 500  # below a second: the step itself


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=50)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=60),
    st.lists(st.booleans(), min_size=2, max_size=60),
)
def test_one_point_per_row_is_counted_exactly(rises: list[float], resets: list[bool]):
    values = np.cumsum(rises)
    for i, reset in enumerate(resets[: len(values)]):
        if reset and i > 0:
            values[i:] -= values[i - 1]  # back near 0: below the previous value
    n = len(values)
    rows = Rollups(
        (A,),
        np.zeros(n, np.int32),
        np.arange(n, dtype=np.int64) * S,
        values,
        values,
        values,
        np.ones(n),
        values,
    )
    found = increases(rows)
    expected = [0.0] + [
        values[i] - values[i - 1] if values[i] >= values[i - 1] else values[i] for i in range(1, n)
    ]
    assert found.tolist() == pytest.approx(expected)


def test_an_alert_window_s_increase_and_rate_through_resets(opener):
    rng = np.random.default_rng(5)
    a = counter(rng.integers(0, 50, len(TS)).astype(float), {200: 3.0, 300: 0.0})
    b = counter(np.full(len(TS), 6.0), {})
    store = opener()
    write(store, (A, a), (B, b))
    start = NOW - 30 * MIN
    inside = start <= TS
    rises = np.where(a[1:] >= a[:-1], a[1:] - a[:-1], a[1:])
    expected = float(rises[inside[1:]].sum())
    found = window_values(store, TIERS, "jobs_total", (), "increase", ("instance",), start, NOW)
    assert found == {
        (("instance", "a"),): pytest.approx(expected),
        (("instance", "b"),): pytest.approx(6.0 * inside.sum()),
    }
    rate = window_values(store, TIERS, "jobs_total", (), "rate", ("job",), start, NOW)
    assert rate == {(("job", "app"),): pytest.approx((expected + 6.0 * inside.sum()) / 1800)}
    cache = WindowCache()
    cached = window_values(
        store, TIERS, "jobs_total", (), "increase", ("instance",), start, NOW, cache=cache
    )
    assert cached == found
