"""POST /v1/metrics over real HTTP in front of a real embedded store: protobuf, OTLP JSON and
gzip; the ExportMetricsServiceResponse and its partial_success; 400, 415 and 503; the counters
on /metrics; arbitrary bodies, which are a 400 with nothing stored unless they decode; and the
OpenTelemetry SDK's own OTLP HTTP exporter with delta temporality."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE, Metric
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from collector.http_ingest import add_ingest_routes
from collector.otlp import STATUS
from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from collector.store_writer import StoreWriter
from shipboard.settings import Settings
from shipboard.stores import watch_store
from storage.embedded import EmbeddedStore
from storage.influx import InfluxStore
from storage.records import RAW, Series
from tests.collector.otlp_messages import gauge, request
from tests.collector.test_http_ingest import Ingest
from tests.collector.test_http_ingest_spool import unreachable_store  # noqa: F401 (a fixture)
from tests.launcher import HOST, free_port
from tests.running import sample_value

NOW_NS = time.time_ns() - 60 * 10**9  # within the raw tier
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "metrics", Settings().tiers(), max_series=20) as store:
        yield store


@pytest.fixture
async def ingest(store: EmbeddedStore):
    ingest = Ingest(store)
    async with ingest.writer:
        yield ingest


def latency(values: list[float], start_ns: int, time_ns: int) -> Metric:
    """A cumulative exponential histogram at scale 6 (one bucket per value here)."""
    metric = Metric(name="http.server.duration")
    metric.exponential_histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
    point = metric.exponential_histogram.data_points.add(
        scale=6, count=len(values), sum=sum(values), min=min(values), max=max(values),
        start_time_unix_nano=start_ns, time_unix_nano=time_ns,
    )  # fmt: skip
    point.positive.offset = 0
    counts = [0] * 400
    for value in values:
        counts[int(np.ceil(np.log2(value) * 64)) - 1] += 1
    point.positive.bucket_counts.extend(counts)
    return metric


async def test_protobuf_gzip_and_json_requests_are_stored_and_answered_in_their_encoding(
    store: EmbeddedStore, ingest: Ingest, aiohttp_client
) -> None:
    client = await aiohttp_client(ingest.app)
    resource = {"service.name": "api"}
    first = request([gauge("queue.depth", 4.0, NOW_NS), latency([3.0, 5.0], 1, NOW_NS)], resource)
    answer = await client.post("/v1/metrics", data=first.SerializeToString(), headers=PROTOBUF)
    assert answer.status == 200
    assert answer.content_type == "application/x-protobuf"
    assert (
        ExportMetricsServiceResponse.FromString(await answer.read())
        == ExportMetricsServiceResponse()
    )
    later = request([latency([3.0, 5.0, 9.0, 10.0], 1, NOW_NS + 10**9)], resource)
    compressed = gzip.compress(later.SerializeToString())
    answer = await client.post(
        "/v1/metrics", data=compressed, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert answer.status == 200
    by_hand = {"resourceMetrics": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "api"}}]}, "scopeMetrics": [{"metrics": [
        {"name": "queue.depth", "gauge": {"dataPoints": [
            {"asInt": "7", "timeUnixNano": str(NOW_NS + 2 * 10**9)}]}}]}]}]}  # fmt: skip
    answer = await client.post("/v1/metrics", data=json.dumps(by_hand), headers=JSON)
    assert answer.status == 200
    assert answer.content_type == "application/json"
    assert await answer.json() == {}
    api = (("service", "api"),)
    got = await asyncio.to_thread(store.read, [Series("queue.depth", api)], 0, 2 * NOW_NS)
    assert [(t - NOW_NS, v) for _, t, v in got.points()] == [(0, 4.0), (2 * 10**9, 7.0)]
    sketches = await asyncio.to_thread(
        store.read_sketches, RAW, [Series("http.server.duration", api)], 0, 2 * NOW_NS
    )
    counts = sketches.values[sketches.keys > 0]
    assert counts.tolist() == [1.0, 1.0, 1.0, 1.0]  # 3 and 5, then the increase: 9 and 10
    assert sketches.values[sketches.keys == -(2**52) + 1].tolist() == [8.0, 19.0]  # the sums
    assert ingest.stats.received["otlp"] == 4


async def test_rejected_points_are_counted_in_partial_success_and_on_metrics(
    store: EmbeddedStore, ingest: Ingest, aiohttp_client
) -> None:
    client = await aiohttp_client(ingest.app)
    message = request([gauge("ok", 1.0, NOW_NS), gauge("bad", float("inf"), NOW_NS)])
    answer = await client.post("/v1/metrics", data=message.SerializeToString(), headers=PROTOBUF)
    response = ExportMetricsServiceResponse.FromString(await answer.read())
    assert answer.status == 200
    assert response.partial_success.rejected_data_points == 1
    assert response.partial_success.error_message == ("not_finite: the value must be finite: 'bad'")
    # Beyond --max-series (20): the new series are refused and counted too.
    many = request([gauge("wide", 1.0, NOW_NS, shard=i) for i in range(30)])
    answer = await client.post("/v1/metrics", data=json_body(many), headers=JSON)
    partial = (await answer.json())["partialSuccess"]
    assert partial["rejectedDataPoints"] == "11"
    assert "series limit (--max-series)" in partial["errorMessage"]
    rendered = (await asyncio.to_thread(ingest.metrics.render)).decode()
    assert sample_value(rendered, "shipboard_received_total", protocol="otlp") == 20
    dropped = "shipboard_dropped_total"
    assert sample_value(rendered, dropped, protocol="otlp", reason="not_finite") == 1
    assert sample_value(rendered, dropped, protocol="otlp", reason="series_limit") == 11


def json_body(message: ExportMetricsServiceRequest) -> str:
    return json_format.MessageToJson(message)


async def test_bad_bodies_and_other_content_types_are_refused_clearly(
    store: EmbeddedStore, ingest: Ingest, aiohttp_client
) -> None:
    client = await aiohttp_client(ingest.app)
    answer = await client.post("/v1/metrics", data=b"\x0a\xff\xff", headers=PROTOBUF)
    assert answer.status == 400
    status = STATUS.FromString(await answer.read())
    assert "not an ExportMetricsServiceRequest in OTLP protobuf" in status.message  # type: ignore[attr-defined]
    assert status.code == 3  # type: ignore[attr-defined]
    answer = await client.post("/v1/metrics", data=b'{"resourceMetrics": 5}', headers=JSON)
    assert answer.status == 400
    assert "in OTLP JSON" in (await answer.json())["message"]
    not_gzip = {**PROTOBUF, "Content-Encoding": "gzip"}
    answer = await client.post("/v1/metrics", data=b"plain bytes", headers=not_gzip)
    assert answer.status == 400
    answer = await client.post("/v1/metrics", data=b"x", headers={"Content-Type": "text/plain"})
    assert answer.status == 415
    assert "send application/x-protobuf or application/json" in await answer.text()
    assert await asyncio.to_thread(store.series_count) == 0
    assert ingest.stats.dropped["otlp", "undecodable"] == 3


async def test_a_full_spool_is_a_503_whose_status_says_so(
    unreachable_store: InfluxStore,  # noqa: F811 (the fixture imported above)
    aiohttp_client,
) -> None:
    stats = IngestStats()
    metrics = ServiceMetrics(stats, lambda: 0)
    watch_store(metrics.registry, unreachable_store)
    async with StoreWriter(unreachable_store, stats, metrics) as writer:
        app = web.Application()
        add_ingest_routes(app, writer, stats, 1 << 20)
        client = await aiohttp_client(app)
        small = request([gauge("g", 1.0, NOW_NS)]).SerializeToString()
        assert (await client.post("/v1/metrics", data=small, headers=PROTOBUF)).status == 200
        body = request([gauge(f"g{i}", 1.0, NOW_NS) for i in range(12)]).SerializeToString()
        refused = await client.post("/v1/metrics", data=body, headers=PROTOBUF)
        assert refused.status == 503
        assert "spool" in STATUS.FromString(await refused.read()).message  # type: ignore[attr-defined]


class ServerThread:
    """The ingest app on a real port, served by its own event loop on a thread, for tests that
    are not coroutines (hypothesis)."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.ingest = Ingest(store)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        await self.ingest.writer.__aenter__()
        self._runner = web.AppRunner(self.ingest.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()

    async def _stop(self) -> None:
        await self._runner.cleanup()
        await self.ingest.writer.__aexit__(None, None, None)

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def post(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        url = f"http://{HOST}:{self.port}/v1/metrics"
        headers = {"Content-Type": content_type}
        call = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(call, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


@pytest.fixture
def server(store: EmbeddedStore) -> Iterator[ServerThread]:
    with ServerThread(store) as running:
        yield running


def decodes(body: bytes, content_type: str) -> bool:
    message = ExportMetricsServiceRequest()
    try:
        if content_type == "application/json":
            json_format.Parse(body, message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(body)
    except (DecodeError, json_format.ParseError, ValueError):
        return False
    return True


json_noise = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["resourceMetrics", "scopeMetrics", "metrics", "x"]), inner,
                      max_size=3),
    max_leaves=10,
).map(lambda doc: json.dumps(doc).encode())  # fmt: skip


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.tuples(st.binary(max_size=64), st.just("application/x-protobuf")),
        st.tuples(st.binary(max_size=64) | json_noise, st.just("application/json")),
    )
)
def test_any_body_is_a_400_storing_nothing_unless_it_decodes(
    server: ServerThread, store: EmbeddedStore, case: tuple[bytes, str]
) -> None:
    body, content_type = case
    before = store.series_count()
    status, answer = server.post(body, content_type)
    if decodes(body, content_type):
        assert status == 200, answer
    else:
        assert status == 400, answer
        assert store.series_count() == before


def test_the_sdk_exporter_sends_delta_counters_and_histograms_unchanged(
    server: ServerThread, store: EmbeddedStore
) -> None:
    delta: dict[type, AggregationTemporality] = {
        Counter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
    }
    exporter = OTLPMetricExporter(
        endpoint=f"http://{HOST}:{server.port}/v1/metrics", preferred_temporality=delta
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    exponential = View(
        instrument_name="jobs.duration", aggregation=ExponentialBucketHistogramAggregation()
    )
    resource = Resource.create({"service.name": "worker", "service.instance.id": "w1"})
    provider = MeterProvider(metric_readers=[reader], resource=resource, views=[exponential])
    meter = provider.get_meter("jobs")
    done, duration = meter.create_counter("jobs.done"), meter.create_histogram("jobs.duration")
    try:
        for batch in ([1.0, 2.0], [3.0, 4.0, 5.0]):
            done.add(len(batch))
            for value in batch:
                duration.record(value)
            assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    tags = (("instance", "w1"), ("service", "worker"))
    got = store.read([Series("jobs.done", tags)], 0, 2 * time.time_ns())
    assert [v for _, _, v in got.points()] == [2.0, 3.0]  # each export's increase
    sketches = store.read_sketches(RAW, [Series("jobs.duration", tags)], 0, 2 * time.time_ns())
    assert sketches.values[sketches.keys > 0].sum() == 5  # as the SDK sent them, per export
    assert sketches.values[sketches.keys == -(2**52) + 1].tolist() == [3.0, 12.0]


async def test_otlp_json_with_hex_exemplar_ids_and_enum_names_is_read(
    store: EmbeddedStore, ingest: Ingest, aiohttp_client
) -> None:
    # OTLP JSON writes trace and span ids in hex (protobuf's JSON would be base64); exemplars
    # are not kept, but must not make the request undecodable. Enums may be names or numbers.
    exemplar = {
        "asDouble": 2.5,
        "timeUnixNano": str(NOW_NS),
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
    }
    point = {"asDouble": 2.5, "timeUnixNano": str(NOW_NS), "exemplars": [exemplar]}
    sums = {"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA", "dataPoints": [point]}
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "x", "sum": sums}]}]}]}
    client = await aiohttp_client(ingest.app)
    answer = await client.post("/v1/metrics", data=json.dumps(body), headers=JSON)
    assert answer.status == 200
    got = await asyncio.to_thread(store.read, [Series("x")], 0, 2 * NOW_NS)
    assert got.points() == [(Series("x"), NOW_NS, 2.5)]
