"""OTLP requests for the tests: built from plain values, and random valid ones with the points
they must map to (as collector/otlp_points.py documents the mapping)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    Metric,
)

from storage.records import FloatArray, Series
from storage.sketches import bucket_index

Point = tuple[Series, int, float]
T0_NS = 1_700_000_000 * 10**9


def attributes(tags: dict[str, Any]) -> list[KeyValue]:
    """KeyValues of strings, bools, ints and floats."""
    found = []
    for key, value in tags.items():
        attribute = KeyValue(key=key)
        if isinstance(value, bool):
            attribute.value.bool_value = value
        elif isinstance(value, int):
            attribute.value.int_value = value
        elif isinstance(value, float):
            attribute.value.double_value = value
        else:
            attribute.value.string_value = value
        found.append(attribute)
    return found


def request(
    metrics: list[Metric], resource: dict[str, Any] | None = None
) -> ExportMetricsServiceRequest:
    message = ExportMetricsServiceRequest()
    resource_metrics = message.resource_metrics.add()
    resource_metrics.resource.attributes.extend(attributes(resource or {}))
    resource_metrics.scope_metrics.add().metrics.extend(metrics)
    return message


def gauge(name: str, value: float, time_ns: int = T0_NS, **tags: Any) -> Metric:
    metric = Metric(name=name)
    metric.gauge.data_points.add(as_double=value, time_unix_nano=time_ns).attributes.extend(
        attributes(tags)
    )
    return metric


def fitting_scale(values: FloatArray, scale: int, most_buckets: int = 2000) -> int:
    """The finest scale up to `scale` at which the values span at most `most_buckets` buckets,
    as an SDK lowers its scale to fit its bucket limit."""
    magnitudes = np.abs(values[values != 0])
    while len(magnitudes) and scale > -10:
        index = bucket_index(magnitudes, scale)
        if index.max() - index.min() < most_buckets:
            break
        scale -= 1
    return scale


# ---------------------------------------------------------------------------------------------
# Random valid requests
# ---------------------------------------------------------------------------------------------

names = st.text("abcxyz._-", min_size=1, max_size=12)
tag_values = st.one_of(
    st.text("abcé 1", min_size=1, max_size=6),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
tag_sets = st.dictionaries(st.text("kx.", min_size=1, max_size=4), tag_values, max_size=3)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
times = st.integers(1, 2**62)


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


Rows = list[tuple[str, float, dict[str, str]]]  # (name suffix, value, extra tags)


def _number(draw: st.DrawFn, metric: Metric, time_ns: int, tags: dict[str, Any]) -> Rows:
    data = metric.sum if metric.WhichOneof("data") == "sum" else metric.gauge
    point = data.data_points.add(time_unix_nano=time_ns)
    point.attributes.extend(attributes(tags))
    if draw(st.booleans()):
        point.as_int = draw(st.integers(-(2**53), 2**53))
        return [("", point.as_int, {})]
    point.as_double = draw(finite)
    return [("", point.as_double, {})]


def _histogram(draw: st.DrawFn, metric: Metric, time_ns: int, tags: dict[str, Any]) -> Rows:
    metric.histogram.aggregation_temporality = draw(st.sampled_from(TEMPORALITIES))
    bounds = sorted(set(draw(st.lists(st.floats(-1e6, 1e6), max_size=4))))
    counts = draw(
        st.lists(st.integers(0, 1000), min_size=len(bounds) + 1, max_size=len(bounds) + 1)
    )
    total = draw(st.floats(-1e9, 1e9))
    point = metric.histogram.data_points.add(
        time_unix_nano=time_ns, explicit_bounds=bounds, bucket_counts=counts, count=sum(counts),
        sum=total,
    )  # fmt: skip
    point.attributes.extend(attributes(tags))
    rows: Rows = [(".count", sum(counts), {}), (".sum", total, {})]
    for bound, below in zip([*bounds, math.inf], np.cumsum(counts).tolist(), strict=True):
        rows.append((".bucket", below, {"le": "+Inf" if bound == math.inf else repr(bound)}))
    return rows


def _summary(draw: st.DrawFn, metric: Metric, time_ns: int, tags: dict[str, Any]) -> Rows:
    count, total = draw(st.integers(0, 10**6)), draw(finite)
    point = metric.summary.data_points.add(time_unix_nano=time_ns, count=count, sum=total)
    point.attributes.extend(attributes(tags))
    rows: Rows = [(".count", count, {}), (".sum", total, {})]
    for q in sorted(set(draw(st.lists(st.floats(0, 1), max_size=3)))):
        point.quantile_values.add(quantile=q, value=q * 10)
        rows.append(("", q * 10, {"quantile": repr(q)}))
    return rows


TEMPORALITIES = [AGGREGATION_TEMPORALITY_CUMULATIVE, AGGREGATION_TEMPORALITY_DELTA]
KINDS = {"gauge": _number, "sum": _number, "histogram": _histogram, "summary": _summary}


@st.composite
def valid_metrics(draw: st.DrawFn, base: dict[str, str]) -> tuple[Metric, list[Point]]:
    """A gauge, sum, histogram or summary of a few points, and the points it maps to under
    the resource's tags `base`."""
    name = draw(names)
    kind = draw(st.sampled_from(sorted(KINDS)))
    metric = Metric(name=name)
    if kind == "sum":
        metric.sum.aggregation_temporality = draw(st.sampled_from(TEMPORALITIES))
        metric.sum.is_monotonic = draw(st.booleans())
    elif kind == "gauge":
        metric.gauge.SetInParent()
    expected: list[Point] = []
    for _ in range(draw(st.integers(1, 3))):
        tags = draw(tag_sets)
        time_ns = draw(times)
        series_tags = base | {k: text(v) for k, v in tags.items()}
        for suffix, value, extra in KINDS[kind](draw, metric, time_ns, tags):
            expected.append((Series.of(name + suffix, series_tags | extra), time_ns, float(value)))
    return metric, expected
