"""OTLP/HTTP on a real `shipboard run`: the OpenTelemetry Python SDK and its OTLP HTTP exporter
(protobuf, cumulative temporality, as an application sends it) export a counter, an up-down
counter, a histogram and an exponential histogram twice, and one OTLP JSON request is written
by hand; values and percentiles are read back through /api/v1/query."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource

from storage.sketches import relative_error
from tests.collector.otlp_messages import fitting_scale
from tests.launcher import wait_for
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow  # starts a server process

RESOURCE = {"service.name": "checkout", "host.name": "web1", "service.instance.id": "web1-a"}
CHECKOUT = {"service": "checkout", "host": "web1", "instance": "web1-a"}
EXPONENTIAL = ExponentialBucketHistogramAggregation()  # the SDK's defaults: 160 buckets, scale 20
EXPLICIT = ExplicitBucketHistogramAggregation([10.0, 100.0])


@pytest.fixture(scope="module")
def shipboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningShipboard]:
    running = RunningShipboard(tmp_path_factory.mktemp("otlp") / "data", ["--no-agent"]).start()
    yield running
    assert running.stop() == 0, running.output()


class App:
    """An application instrumented with the OpenTelemetry SDK, exporting to Shipboard over
    OTLP/HTTP protobuf when flushed (the periodic export is set beyond the test's length)."""

    def __init__(self, shipboard: RunningShipboard) -> None:
        exporter = OTLPMetricExporter(
            endpoint=shipboard.url + "/v1/metrics",
            headers={"Authorization": f"Bearer {shipboard.token}"},
        )
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
        self.provider = MeterProvider(
            metric_readers=[reader],
            resource=Resource.create(RESOURCE),
            views=[
                View(instrument_name="rpc.duration", aggregation=EXPONENTIAL),
                View(instrument_name="job.duration", aggregation=EXPLICIT),
            ],
        )
        meter = self.provider.get_meter("shop")
        self.orders = meter.create_counter("orders.placed")
        self.queue = meter.create_up_down_counter("queue.size")
        self.jobs = meter.create_histogram("job.duration", unit="ms")
        self.rpc = meter.create_histogram("rpc.duration", unit="ms")

    def export(self) -> None:
        assert self.provider.force_flush(10_000)


@pytest.fixture
def app(shipboard: RunningShipboard) -> Iterator[App]:
    running = App(shipboard)
    yield running
    running.provider.shutdown()


def last(shipboard: RunningShipboard, metric: str, **params: str) -> dict[str, float]:
    """The last value of each series of `metric` over the last 10 minutes, by its str(tags)."""
    query = {"metric": metric, "from": "-10m", "step": "1h", "agg": "last", **params}
    return {
        json.dumps(series["tags"], sort_keys=True): series["points"][-1][1]
        for series in shipboard.query(**query)["series"]
    }


def one(shipboard: RunningShipboard, metric: str, **params: str) -> float:
    values = list(last(shipboard, metric, **params).values())
    assert len(values) == 1, values
    return values[0]


def test_the_sdk_exports_counters_and_histograms_read_back_with_percentiles(
    shipboard: RunningShipboard, app: App
) -> None:
    rng = np.random.default_rng(11)
    first, second = rng.lognormal(3, 0.8, 1500), rng.lognormal(4, 0.5, 1000)
    app.orders.add(3, {"payment": "card"})
    app.orders.add(4, {"payment": "card"})
    app.queue.add(10)
    app.queue.add(-3)
    for value in (5.0, 50.0, 500.0, 7.0):
        app.jobs.record(value)
    for value in first.tolist():
        app.rpc.record(value)
    app.export()
    app.orders.add(5, {"payment": "card"})
    for value in second.tolist():
        app.rpc.record(value)
    app.export()

    every = np.concatenate([first, second])
    wait_for(lambda: last(shipboard, "rpc.duration", agg="count", group_by="service")
             == {'{"service": "checkout"}': float(len(every))})  # fmt: skip
    assert last(shipboard, "orders.placed") == {
        json.dumps({**CHECKOUT, "payment": "card"}, sort_keys=True): 12.0
    }
    assert one(shipboard, "queue.size", tags="service:checkout") == 7.0
    assert one(shipboard, "job.duration.count") == 4.0
    assert one(shipboard, "job.duration.sum") == 562.0
    buckets = last(shipboard, "job.duration.bucket", group_by="le")
    assert buckets == {'{"le": "10.0"}': 2.0, '{"le": "100.0"}': 3.0, '{"le": "+Inf"}': 4.0}
    # The exporter's scale fits its 160 buckets over the values' range; the error is that
    # scale's, or scale 6's when it is finer.
    sdk_scale = fitting_scale(every, 20, most_buckets=160)
    error = relative_error(min(sdk_scale, 6))
    for agg, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        got = one(shipboard, "rpc.duration", agg=agg, group_by="service")
        assert abs(got / np.quantile(every, q) - 1) <= error, agg
    assert one(shipboard, "rpc.duration", agg="max", group_by="service") == every.max()
    assert shipboard.metric_value("shipboard_received_total", protocol="otlp") >= 10


def test_a_json_request_written_by_hand(shipboard: RunningShipboard) -> None:
    now_ns = time.time_ns()
    # OTLP JSON: camelCase keys, 64-bit integers as strings, enums as numbers (2: cumulative).
    at = str(now_ns)
    users = [{"key": "table", "value": {"stringValue": "users"}}]
    rows = {"aggregationTemporality": 2, "isMonotonic": True,
            "dataPoints": [{"asInt": "42", "timeUnixNano": at, "attributes": users}]}  # fmt: skip
    counts = ["1", "0", "0", "1", "0", "0", "1", "0", "1"]  # buckets 6 to 14
    latency = {"aggregationTemporality": 1, "dataPoints": [{
        "timeUnixNano": at, "scale": 2, "count": "4", "sum": 29.0, "min": 3.0, "max": 12.0,
        "zeroCount": "0", "positive": {"offset": 6, "bucketCounts": counts}}]}  # fmt: skip
    metrics = [
        {"name": "batch.rows", "sum": rows},
        {"name": "batch.latency", "exponentialHistogram": latency},
        {"name": "batch.bad", "gauge": {"dataPoints": [{"timeUnixNano": at}]}},
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "batch"}}]}
    body: dict[str, Any] = {"resourceMetrics": [
        {"resource": resource, "scopeMetrics": [{"scope": {"name": "by-hand"}, "metrics": metrics}]}
    ]}  # fmt: skip
    status, answer = shipboard.post(
        "/v1/metrics", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, answer
    partial = json.loads(answer)["partialSuccess"]
    assert partial["rejectedDataPoints"] == "1"
    assert "no_value" in partial["errorMessage"]
    wait_for(lambda: last(shipboard, "batch.rows"))
    assert last(shipboard, "batch.rows") == {'{"service": "batch", "table": "users"}': 42.0}
    # At scale 2 bucket i is (2^(i/4), 2^((i+1)/4)]: 3 is in bucket 6, 5 in 9, 9 in 12 and 12
    # in 14; the p50 of the four is halfway between 5's and 9's buckets' estimates.
    assert one(shipboard, "batch.latency", agg="count") == 4.0
    p50 = one(shipboard, "batch.latency", agg="p50")
    assert abs(p50 / np.quantile([3.0, 5.0, 9.0, 12.0], 0.5) - 1) <= relative_error(2)
