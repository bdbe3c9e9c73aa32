"""A range query is its instant queries, one per step: for random queries of the subset, steps
and ranges over data with gaps, resets and series that stop, each step of the matrix is the
instant answer at its time (Prometheus' engine holds this too)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from aggregator.promql.routes import instant_query, range_query
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from tests.aggregator.promql.dataset import MIN, SPAN_MS, build

QUERIES = [
    "http_requests_count",
    "rate(http_requests_count[2m])",
    "sum by (service) (increase(http_requests_count[5m]))",
    "node_temp > 0",
    "avg_over_time(node_temp[3m]) - node_temp offset 1m",
    "topk(2, node_temp)",
    "histogram_quantile(0.5, rate(latency_seconds_bucket[2m]))",
    "max_over_time(rate(http_requests_count[1m])[5m:30s])",
    "count(node_temp) + scalar(jobs_total)",
    'absent(node_temp{host="z"})',
]
NOW_MS = int(time.time()) * 1000
DATASET = build(NOW_MS - NOW_MS % MIN - SPAN_MS - MIN)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(Path(tmp_path_factory.mktemp("store")), Settings().tiers()) as opened:
        opened.write(DATASET.samples())
        yield opened


def _instant(
    store: EmbeddedStore, query: str, at_ms: int
) -> dict[tuple[tuple[str, str], ...], str]:
    answer = instant_query(store, MultiDict(query=query, time=str(at_ms / 1000)), 0)
    assert isinstance(answer, dict)
    if answer["resultType"] == "scalar":
        return {(): answer["result"][1]}
    return {tuple(sorted(e["metric"].items())): e["value"][1] for e in answer["result"]}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.sampled_from(QUERIES),
    start_s=st.integers(-5 * 60, SPAN_MS // 1000 + 10 * 60),
    steps=st.integers(1, 12),
    step_s=st.integers(1, 400),
)
def test_each_step_of_a_range_query_is_the_instant_query(
    store: EmbeddedStore, query: str, start_s: int, steps: int, step_s: int
) -> None:
    start_ms = DATASET.base_ms + start_s * 1000
    end_ms = start_ms + (steps - 1) * step_s * 1000
    params = MultiDict(
        query=query, start=str(start_ms / 1000), end=str(end_ms / 1000), step=str(step_s)
    )
    answer = range_query(store, params)
    assert isinstance(answer, dict)
    by_time: dict[int, dict[tuple[tuple[str, str], ...], str]] = {}
    for element in answer["result"]:
        for t, value in element["values"]:
            by_time.setdefault(round(t * 1000), {})[tuple(sorted(element["metric"].items()))] = (
                value
            )
    for at_ms in range(start_ms, end_ms + 1, step_s * 1000):
        assert by_time.get(at_ms, {}) == _instant(store, query, at_ms), (query, at_ms)
