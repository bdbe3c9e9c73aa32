"""PromQL answers equal Prometheus' own: the same samples written into a real Prometheus
(remote write) and into a store (embedded, InfluxDB, VictoriaMetrics), the same queries asked of
both, at instants that fall before, inside and after the data, on its points and 5 minutes (the
lookback) past them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from multidict import MultiDict

from aggregator.promql.routes import ApiError, instant_query, range_query
from shipboard.settings import Settings
from storage.base import Store, StoreReader
from storage.embedded import EmbeddedStore
from storage.influx import InfluxConfig, InfluxStore
from storage.victoria import VictoriaStore
from storage.victoria_config import VictoriaConfig
from tests.aggregator.promql.dataset import MIN, SPAN_MS, Dataset, S, build
from tests.aggregator.promql.truth import Prometheus, assert_same_answer
from tests.backends import Influxd
from tests.victoria import STORE_OPTIONS, VictoriaMetrics

pytestmark = pytest.mark.slow  # starts a Prometheus server

LOOKBACK = 5 * MIN


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    now_ms = int(time.time()) * 1000
    return build(now_ms - now_ms % MIN - SPAN_MS - 15 * MIN)


@pytest.fixture(scope="module", params=["embedded", "influxdb", "victoriametrics"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dataset: Dataset
) -> Iterator[StoreReader]:
    """The dataset in each store in turn (PromQL is Shipboard's own, evaluated over the points
    each store reads back)."""
    opened: Store
    home = tmp_path_factory.mktemp("store")
    if request.param == "embedded":
        opened = EmbeddedStore(home, Settings().tiers())
    elif request.param == "influxdb":
        influxd: Influxd = request.getfixturevalue("influxd")
        config = InfluxConfig(influxd.url, api="v1", database=influxd.new_database())
        opened = InfluxStore(config, Settings().tiers(), home / "spool", listing_ttl_s=0.0)
    else:
        server: VictoriaMetrics = request.getfixturevalue("victoria_server")
        server.forget_everything()
        opened = VictoriaStore(
            VictoriaConfig(url=server.url), Settings().tiers(), home / "spool", **STORE_OPTIONS
        )
    with opened:
        result = opened.write(dataset.samples())
        assert result.accepted == len(dataset.samples())
        yield opened


def ours(store: StoreReader, params: dict[str, str], instant: bool = True) -> dict[str, Any]:
    try:
        data = (
            instant_query(store, MultiDict(params), 0)
            if instant
            else range_query(store, MultiDict(params))
        )
    except ApiError as error:
        return {"status": "error", "errorType": error.kind, "error": str(error)}
    answer: dict[str, Any] = orjson.loads(orjson.dumps({"status": "success", "data": data}))
    return answer


def instants(dataset: Dataset) -> list[int]:
    """Before the data, on its first point, within it, where a series stops (and a lookback
    later, to the ms), in the gauge's gap, at the end and past the end's lookback."""
    base = dataset.base_ms
    stopped = max(dataset.series[1][1])  # host b's last point
    last = max(t for _, ts, _ in dataset.series for t in ts)
    return [
        base - MIN, base, base + 7 * S + 500, base + 10 * MIN, base + 16 * MIN + 1,
        stopped, stopped + LOOKBACK - 1, stopped + LOOKBACK, stopped + LOOKBACK + 1,
        base + 22 * MIN + 333, last, last + LOOKBACK, last + LOOKBACK + 1, last + 9 * MIN,
    ]  # fmt: skip


SELECTORS = [
    "http_requests_count",
    'http_requests_count{service="web"}',
    'http_requests_count{host=~"a|c"}',
    'http_requests_count{host!="a", service!~"d.*"}',
    '{__name__=~"http_.*|jobs_total"}',
    "node_temp",
    'node_temp{service_name="infra"} offset 3m',
    "jobs_total offset -2m",
    "latency_seconds_bucket",
]
RANGE_FUNCTIONS = [
    "rate(http_requests_count[5m])",
    "rate(http_requests_count[1m])",
    "rate(http_requests_count[47s])",
    "increase(http_requests_count[2m])",
    "increase(jobs_total[5m] offset 1m)",
    "irate(http_requests_count[1m])",
    "delta(node_temp[3m])",
    "idelta(node_temp[2m])",
    "changes(node_temp[10m])",
    "resets(http_requests_count[30m])",
    "avg_over_time(node_temp[4m])",
    "sum_over_time(node_temp[4m])",
    "min_over_time(node_temp[4m])",
    "max_over_time(node_temp[4m])",
    "count_over_time(node_temp[90s])",
    "last_over_time(node_temp[10m])",
    "stddev_over_time(node_temp[6m])",
    "stdvar_over_time(node_temp[6m])",
    "present_over_time(node_temp[1m])",
    "quantile_over_time(0.9, node_temp[5m])",
    "max_over_time(rate(http_requests_count[1m])[10m:])",
    "avg_over_time(node_temp[5m:30s])",
    "rate(http_requests_count[5m:15s])",
    "sum_over_time(sum by (service) (http_requests_count)[3m:1m] offset 2m)",
    "min_over_time(deriv(node_temp[2m])[5m:45s])",
    "max_over_time(max_over_time(node_temp[2m:30s])[6m:1m])",
    "absent_over_time(nonexistent[5m:1m])",
    "deriv(node_temp[5m])",
    "deriv(jobs_total[3m])",
    "predict_linear(http_requests_count[5m], 600)",
    "predict_linear(node_temp[2m] offset 1m, -30)",
    "absent_over_time(node_temp[5m])",
    'absent_over_time(nonexistent{job="x"}[1m])',
]
AGGREGATIONS = [
    "sum(rate(http_requests_count[5m]))",
    "sum by (service) (rate(http_requests_count[5m]))",
    "sum without (host) (http_requests_count)",
    "avg by (service_name) (node_temp)",
    "min(node_temp)",
    "max by (host) (node_temp)",
    "count by (service) (http_requests_count)",
    "count without () (http_requests_count)",
    "topk(2, node_temp)",
    "bottomk(1, http_requests_count)",
    "topk by (service) (1, http_requests_count)",
    "stddev(node_temp)",
    "stdvar by (service_name) (node_temp)",
    "group by (service) (http_requests_count)",
    "quantile(0.25, node_temp)",
    "quantile by (service) (0.9, http_requests_count)",
    'count_values("value", round(node_temp / 10))',
    'count_values without (host) ("bucket", ceil(node_temp / 20))',
    'sum by (__name__) ({__name__=~"http_requests_count|jobs_total"})',
]
OPERATORS = [
    "http_requests_count * 2 + 1",
    "2 ^ node_temp / 1e3",
    "node_temp % 7",
    "-node_temp",
    "node_temp > 10",
    "node_temp > bool 10",
    "10 < node_temp",
    "5 >= bool node_temp",
    "node_temp == node_temp",
    "node_temp != bool ignoring(service_name) node_temp",
    'http_requests_count{host="a"} - ignoring(host) http_requests_count{host="b"}',
    "rate(http_requests_count[5m]) / on(host, service) rate(http_requests_count[10m])",
    "sum by (service) (http_requests_count)"
    " / on(service) sum by (service) (http_requests_count offset 5m)",
    "node_temp / 0",
    '{__name__=~"node_temp|http_requests_count", host="c"} * 2',
    '{__name__=~"node_temp|http_requests_count", host="c"} > bool 0',
    'label_replace(node_temp, "host", "a", "host", ".*")',
    'sum by (host) (label_replace(node_temp, "host", "a", "host", ".*"))',
    "http_requests_count and on(host) node_temp > 0",
    "node_temp or http_requests_count",
    "http_requests_count unless on(host) node_temp < 0",
    "(1 + 2) * 3 - 4 / 5",
    "node_temp * on(host) group_left(service) http_requests_count",
    "http_requests_count / on(service) group_left sum by (service) (http_requests_count)",
    "sum by (service) (http_requests_count) - on(service) group_right http_requests_count",
    "sum by (service) (http_requests_count) > on(service) group_right() http_requests_count",
    "node_temp > bool on(host) group_left(service) http_requests_count",
    "2 > bool 1",
]
FUNCTIONS = [
    "abs(node_temp)",
    "ceil(node_temp)",
    "floor(node_temp)",
    "round(node_temp)",
    "round(node_temp, 5)",
    "round(node_temp, 0.1)",
    "clamp(node_temp, -5, 5)",
    "clamp_min(node_temp, 0)",
    "clamp_max(node_temp, 0)",
    "sqrt(abs(node_temp))",
    "exp(node_temp / 10)",
    "ln(abs(node_temp))",
    "log2(http_requests_count)",
    "log10(http_requests_count)",
    "sgn(node_temp)",
    "sin(node_temp) + cos(node_temp) * tan(node_temp / 100)",
    "asin(node_temp / 50) + acos(clamp(node_temp / 30, -1, 1)) - atan(node_temp)",
    "sinh(node_temp / 10) / cosh(node_temp / 10) - tanh(node_temp / 10)",
    "asinh(node_temp) + acosh(abs(node_temp) + 1) + atanh(node_temp / 100)",
    "deg(node_temp) - rad(node_temp) * pi()",
    "hour() + minute() / 60",
    "day_of_month(vector(time() * 7)) + month(vector(time() * 7))",
    "day_of_week(jobs_total * 86400) + day_of_year(jobs_total * 86400)",
    "year(node_temp * 1e7) + days_in_month(node_temp * 3e6)",
    "absent(nonexistent)",
    'absent(nonexistent{job="x", env=~"p.*"})',
    "absent(http_requests_count)",
    "absent(sum(nonexistent))",
    "time()",
    "timestamp(node_temp)",
    "timestamp(jobs_total offset 2m)",
    "timestamp(rate(http_requests_count[5m]))",
    "time() - timestamp(http_requests_count)",
    "vector(1) + time()",
    "scalar(jobs_total)",
    "scalar(http_requests_count)",
    'label_replace(http_requests_count, "zone", "z-$1", "host", "(.*)")',
    'label_replace(node_temp, "host", "", "host", "a")',
    'label_replace(node_temp, "all", "${1}_$2", "host", "(.)(.*)")',
    'label_join(node_temp, "id", "/", "host", "service_name")',
    'label_join(http_requests_count, "host", "", "nothing")',
    "sort(node_temp)",
    "sort_desc(rate(http_requests_count[5m]))",
    "histogram_quantile(0.9, rate(latency_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[5m])))",
    "histogram_quantile(0.99, latency_seconds_bucket)",
    "histogram_quantile(0, latency_seconds_bucket)",
    "histogram_quantile(1, latency_seconds_bucket)",
    "histogram_quantile(1.5, latency_seconds_bucket)",
]
QUERIES = SELECTORS + RANGE_FUNCTIONS + AGGREGATIONS + OPERATORS + FUNCTIONS


@pytest.mark.parametrize("query", QUERIES)
def test_instant_queries_answer_as_prometheus(
    query: str, dataset: Dataset, prometheus: Prometheus, store: StoreReader
) -> None:
    for at in instants(dataset):
        params = {"query": query, "time": f"{at / 1000:.3f}"}
        _, truth = prometheus.api("query", **params)
        assert_same_answer(f"{query} at {at}", ours(store, params), truth)


@pytest.mark.parametrize("query", QUERIES)
def test_range_queries_answer_as_prometheus(
    query: str, dataset: Dataset, prometheus: Prometheus, store: StoreReader
) -> None:
    base = dataset.base_ms
    for start, end, step in [
        (base - 2 * MIN, base + SPAN_MS + 8 * MIN, "37"),
        (base + 19 * MIN + 1, base + 27 * MIN, "15s"),
    ]:
        params = {
            "query": query,
            "start": f"{start / 1000:.3f}",
            "end": f"{end / 1000:.3f}",
            "step": step,
        }
        _, truth = prometheus.api("query_range", **params)
        assert_same_answer(f"{query} over {start}..{end}", ours(store, params, False), truth)


def test_range_vectors_answer_with_their_points(
    dataset: Dataset, prometheus: Prometheus, store: StoreReader
) -> None:
    for query in (
        "node_temp[2m]",
        "http_requests_count[1m] offset 30s",
        "jobs_total[5m]",
        "node_temp[3m:1m]",
        "rate(http_requests_count[1m])[4m:20s] offset 1m",
    ):
        for at in instants(dataset):
            params = {"query": query, "time": f"{at / 1000:.3f}"}
            _, truth = prometheus.api("query", **params)
            assert_same_answer(f"{query} at {at}", ours(store, params), truth)


def test_the_at_modifier_answers_as_prometheus(
    dataset: Dataset, prometheus: Prometheus, store: StoreReader
) -> None:
    at = f"{(dataset.base_ms + 11 * MIN + 7 * S) / 1000:.3f}"
    queries = [
        f"node_temp @ {at}",
        f"node_temp @ {at} offset 1m",
        f"rate(http_requests_count[5m] @ {at})",
        f"increase(jobs_total[10m] @ {at} offset 2m)",
        f"sum(rate(http_requests_count[5m] @ {at})) by (service)",
        f"http_requests_count - http_requests_count @ {at}",
        "http_requests_count @ start()",
        "sum by (host) (node_temp @ end())",
        "avg_over_time(node_temp[3m] @ end() offset 30s)",
    ]
    base = dataset.base_ms
    for query in queries:
        for when in instants(dataset):
            params = {"query": query, "time": f"{when / 1000:.3f}"}
            _, truth = prometheus.api("query", **params)
            assert_same_answer(f"{query} at {when}", ours(store, params), truth)
        start, end = f"{(base + 5 * MIN) / 1000:.3f}", f"{(base + 29 * MIN) / 1000:.3f}"
        params = {"query": query, "start": start, "end": end, "step": "70"}
        _, truth = prometheus.api("query_range", **params)
        assert_same_answer(f"{query} over {start}..{end}", ours(store, params, False), truth)
