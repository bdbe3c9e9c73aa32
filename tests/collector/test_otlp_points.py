"""OTLP requests mapped to points and sketches as collector/otlp_points.py documents: random valid
requests, every kind of rejected point, and exponential histograms from OTLP's own bucketing and
the OpenTelemetry SDK's aggregation, merged into sketches without loss at scale 6."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK,
    ExponentialHistogramDataPoint,
    Metric,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from collector.otlp_points import map_request
from collector.otlp_sketches import CumulativeStreams
from storage.records import Series
from storage.sketches import STATSD_SCALE, bucket_index, quantiles, relative_error, value_keys
from tests.collector.otlp_messages import (
    T0_NS,
    fitting_scale,
    gauge,
    request,
    tag_sets,
    text,
    valid_metrics,
)

NOW_NS = T0_NS + 10**12


def mapped_points(message, streams: CumulativeStreams | None = None):
    mapped = map_request(message, NOW_NS, streams or CumulativeStreams())
    return mapped, sorted(mapped.samples.points(), key=repr)


@pytest.mark.slow
@settings(max_examples=30)
@given(st.lists(tag_sets, min_size=1, max_size=2), st.data())
def test_random_valid_requests_map_as_documented(resources, data) -> None:
    message = request([])
    message.ClearField("resource_metrics")
    expected = []
    for resource in resources:
        sdk = {"service.name": "api", "host.name": "h1", "telemetry.sdk.version": "1.0"}
        resource_metrics = request([], resource | sdk).resource_metrics[0]
        base = {k: text(v) for k, v in resource.items()} | {"service": "api", "host": "h1"}
        for _ in range(data.draw(st.integers(1, 3))):
            metric, points = data.draw(valid_metrics(base))
            resource_metrics.scope_metrics[0].metrics.append(metric)
            expected += points
        message.resource_metrics.append(resource_metrics)
    mapped, points = mapped_points(message)
    assert mapped.rejected == Counter()
    assert points == sorted(expected, key=repr)


def test_resource_attributes_are_tags_and_a_point_attribute_wins_a_clash() -> None:
    resource = {"service.name": "api", "host.name": "h1", "service.instance.id": "u1",
                "region": "eu", "telemetry.sdk.name": "x"}  # fmt: skip
    message = request([gauge("q.depth", 3.0, region="us", shard=2, up=True, load=0.5)], resource)
    _, points = mapped_points(message)
    tags = {
        "service": "api",
        "instance": "u1",
        "host": "h1",
        "region": "us",
        "shard": "2",
        "up": "true",
        "load": "0.5",
    }
    assert points == [(Series.of("q.depth", tags), T0_NS, 3.0)]


def test_a_point_without_time_takes_the_arrival_and_one_without_a_recorded_value_is_skipped():
    metric = gauge("g", 1.0, time_ns=0)
    metric.gauge.data_points.add(as_double=2.0, time_unix_nano=T0_NS,
                                 flags=DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)  # fmt: skip
    mapped, points = mapped_points(request([metric]))
    assert points == [(Series("g"), NOW_NS, 1.0)]
    assert mapped.rejected == Counter()


def bad_metrics() -> list[tuple[Metric, str]]:
    no_value = Metric(name="n")
    no_value.gauge.data_points.add(time_unix_nano=T0_NS)
    no_temporality = Metric(name="s")
    no_temporality.sum.data_points.add(as_int=1)
    buckets = Metric(name="h")
    buckets.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_DELTA
    buckets.histogram.data_points.add(explicit_bounds=[1.0, 2.0], bucket_counts=[1, 2])
    unsorted = Metric(name="h")
    unsorted.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_DELTA
    unsorted.histogram.data_points.add(explicit_bounds=[2.0, 1.0], bucket_counts=[1, 2, 3])
    quantile = Metric(name="q")
    quantile.summary.data_points.add(count=1).quantile_values.add(quantile=1.5, value=1)
    scale = Metric(name="e")
    scale.exponential_histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_DELTA
    scale.exponential_histogram.data_points.add(scale=21, zero_count=1)
    return [
        (gauge("g", float("nan")), "not_finite"),
        (no_value, "no_value"),
        (no_temporality, "temporality"),
        (buckets, "bad_buckets"),
        (unsorted, "bad_buckets"),
        (quantile, "bad_quantile"),
        (scale, "bad_scale"),
        (Metric(name="empty"), "no_data"),
        (gauge("", 1.0), "no_name"),
    ]


@pytest.mark.parametrize(("metric", "reason"), bad_metrics())
def test_a_bad_point_is_rejected_by_reason_and_the_good_ones_kept(metric, reason) -> None:
    mapped, points = mapped_points(request([gauge("ok", 1.0), metric]))
    assert mapped.rejected == Counter({reason: 1})
    assert str(mapped.first_error).startswith(reason)
    assert points == [(Series("ok"), T0_NS, 1.0)]


def exponential(values, scale: int, temporality=AGGREGATION_TEMPORALITY_DELTA, start_ns=1,
                time_ns=T0_NS, name="lat") -> Metric:  # fmt: skip
    """An exponential histogram of `values` bucketed as OTLP defines it at `scale`."""
    values = np.asarray(values, np.float64)
    metric = Metric(name=name)
    metric.exponential_histogram.aggregation_temporality = temporality
    point = metric.exponential_histogram.data_points.add(
        scale=scale, count=len(values), sum=float(values.sum()),
        zero_count=int((values == 0).sum()), start_time_unix_nano=start_ns, time_unix_nano=time_ns,
    )  # fmt: skip
    if len(values):
        point.min, point.max = float(values.min()), float(values.max())
    for buckets, part in (
        (point.positive, values[values > 0]),
        (point.negative, -values[values < 0]),
    ):
        if len(part):
            index = bucket_index(part, scale)
            buckets.offset = int(index.min())
            buckets.bucket_counts.extend(np.bincount(index - index.min()).tolist())
    return metric


def sketch_buckets(mapped) -> dict[int, float]:
    keys, values = mapped.sketches.keys, mapped.sketches.values
    return {int(k): float(v) for k, v in zip(keys[4:], values[4:], strict=True)}


magnitudes = st.floats(1e-30, 1e30)
signed = st.one_of(magnitudes, magnitudes.map(lambda v: -v), st.just(0.0))


@settings(max_examples=80)
@given(st.lists(signed, min_size=1, max_size=60), st.integers(-10, 20))
def test_an_exponential_histogram_is_the_sketch_of_its_values_at_scale_6_or_its_own(values, scale):
    scale = fitting_scale(np.asarray(values), scale)
    mapped, _ = mapped_points(request([exponential(values, scale)]))
    stored = min(scale, STATSD_SCALE)
    keys = value_keys(np.asarray(values), stored)
    assert sketch_buckets(mapped) == {int(k): float(n) for k, n in Counter(keys.tolist()).items()}
    header = mapped.sketches.values[:4].tolist()
    assert header == [stored, float(np.sum(values)), min(values), max(values)]
    assert mapped.sketch_count == 1


def test_percentiles_of_a_sketch_are_within_the_scales_error_of_numpys() -> None:
    values = np.random.default_rng(7).lognormal(3, 1, 5000)
    for scale, error in ((12, relative_error(6)), (6, relative_error(6)), (3, relative_error(3))):
        mapped, _ = mapped_points(request([exponential(values, scale)]))
        label = np.zeros(len(mapped.sketches), np.int64)
        for q in (0.5, 0.9, 0.99):
            _, got = quantiles(label, mapped.sketches.keys, mapped.sketches.values, q)
            assert abs(got[0] / np.percentile(values, q * 100) - 1) <= error + 1e-9


def test_cumulative_exports_are_stored_as_their_increases_and_a_new_start_is_a_reset() -> None:
    streams = CumulativeStreams()
    cumulative = AGGREGATION_TEMPORALITY_CUMULATIVE
    first, second = [1.0, 2.0, 300.0], [5.0, 7.5]

    def export(values, time_ns, start_ns=1, scale=8):
        metric = exponential(values, scale, cumulative, start_ns, time_ns)
        mapped = map_request(request([metric]), NOW_NS, streams)
        streams.commit(mapped.pending)
        return mapped

    assert sketch_buckets(export(first, T0_NS)) == dict(
        Counter(value_keys(np.asarray(first), 6).tolist())
    )
    # the SDK lowers a cumulative histogram's scale as its range grows: the increase is at 5
    grown = export(first + second, T0_NS + 10, scale=5)
    assert sketch_buckets(grown) == dict(Counter(value_keys(np.asarray(second), 5).tolist()))
    low = 2.0 ** (float(bucket_index(np.asarray([5.0]), 5)[0]) / 32)
    high = 2.0 ** (float(bucket_index(np.asarray([7.5]), 5)[0] + 1) / 32)
    assert grown.sketches.values[:4].tolist() == [5.0, 12.5, low, high]
    assert export(first + second, T0_NS + 10, scale=5).sketch_count == 0  # re-sent
    assert export(first + second, T0_NS + 20, scale=5).sketch_count == 0  # nothing new
    restarted = export([4.0], T0_NS + 30, start_ns=T0_NS + 25)
    assert sketch_buckets(restarted) == {int(value_keys(np.asarray([4.0]), 6)[0]): 1.0}
    grew = export([4.0, 9.0], T0_NS + 40, start_ns=T0_NS + 25)
    assert sum(sketch_buckets(grew).values()) == 1  # 9.0 only
    lost = export([9.0], T0_NS + 50, start_ns=T0_NS + 25)  # a count went down: a reset
    assert sketch_buckets(lost) == {int(value_keys(np.asarray([9.0]), 6)[0]): 1.0}


def test_a_cumulative_state_is_kept_only_once_committed() -> None:
    streams = CumulativeStreams()
    metric = exponential([1.0, 2.0], 6, AGGREGATION_TEMPORALITY_CUMULATIVE)
    for _ in range(2):  # the first write failed: the retry counts the same values again
        assert map_request(request([metric]), NOW_NS, streams).sketch_count == 1


def test_the_sdk_exponential_histogram_maps_to_the_sketch_of_the_recorded_values() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="*", aggregation=ExponentialBucketHistogramAggregation())],
    )
    values = np.random.default_rng(3).lognormal(2, 1.5, 2000)
    histogram = provider.get_meter("test").create_histogram("job.duration", unit="ms")
    for value in values.tolist():
        histogram.record(value, {"queue": "a"})
    data = reader.get_metrics_data()
    assert data is not None
    message = encode_metrics(data)
    provider.shutdown()
    mapped, _ = mapped_points(message)
    assert mapped.sketches.series[0].metric == "job.duration"
    assert mapped.sketches.series[0].tag("queue") == "a"
    sdk_scale = (
        message.resource_metrics[0]
        .scope_metrics[0]
        .metrics[0]
        .exponential_histogram.data_points[0]
        .scale
    )
    assert sdk_scale == 3  # 160 buckets (the SDK's default) over this range
    assert mapped.sketches.values[0] == sdk_scale
    expected = Counter(value_keys(values, sdk_scale).tolist())
    assert sketch_buckets(mapped) == {int(k): float(n) for k, n in expected.items()}


def test_a_point_of_no_values_stores_no_sketch() -> None:
    mapped, _ = mapped_points(request([exponential([], 6)]))
    assert mapped.sketch_count == 0
    assert mapped.rejected == Counter()


@pytest.mark.parametrize("scale", [-10, -3, 0])  # finer scales take millions of buckets here
def test_extreme_values_keep_finite_bounds(scale: int) -> None:
    metric = exponential([1e-300, 1e300, -1e300], scale)
    point: ExponentialHistogramDataPoint = metric.exponential_histogram.data_points[0]
    point.ClearField("min")
    point.ClearField("max")
    point.ClearField("sum")
    mapped, _ = mapped_points(request([metric]))
    assert np.isfinite(mapped.sketches.values).all()
    low, high = mapped.sketches.values[2:4]
    assert low < -1e299
    assert high > 1e299
