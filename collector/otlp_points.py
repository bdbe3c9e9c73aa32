"""An OTLP `ExportMetricsServiceRequest` as Shipboard's points and sketches.

Names stay as OTLP has them (`http.server.duration`). Tags: the resource's attributes, with
`service.name` as `service`, `host.name` as `host` and `service.instance.id` as `instance` (as
Prometheus names it: SDKs make it a new UUID per process, which keeps two processes' counters
apart), every other one by its name except the SDK's `telemetry.sdk.*` (the same on every series
of a process, and changed by an upgrade); then the data point's attributes, which win over a
resource attribute of the same tag. String, bool, int and double attributes are tags (`true`,
`42`, `0.5`); empty ones, arrays, key-value lists and bytes are left out.

- gauge: `<name>`, the value.
- sum: `<name>`, the value as sent: a cumulative sum its running total (a monotonic one is a
  counter, which `agg=rate` and `agg=increase` read across resets), a delta sum each export's
  change (`agg=sum` totals a step).
- histogram: `<name>.count`, `<name>.sum`, `<name>.min`, `<name>.max` (when sent), and
  `<name>.bucket{le=...}` per bound, counting the values at or below it (`le=+Inf` all), as
  Prometheus does; cumulative or per export as the temporality is.
- exponential histogram: a sketch under `<name>` (`collector.otlp_sketches`).
- summary: `<name>{quantile=...}` per quantile, `<name>.count` and `<name>.sum`.

A point without a time takes the request's arrival time; one flagged "no recorded value" is
skipped. A point that cannot be stored is rejected, counted by `ParseError.reason`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TypeVar

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK,
    ExponentialHistogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    SummaryDataPoint,
)

from collector.errors import ParseError
from collector.otlp_sketches import CumulativeStreams, Histogram, from_point, sketch_rows
from storage.records import Samples, Series, Sketches
from storage.sketches import SCALE_KEY

RESOURCE_TAGS = {"service.name": "service", "host.name": "host", "service.instance.id": "instance"}
UNTAGGED_PREFIX = "telemetry.sdk."

Point = tuple[Series, int, float]


@dataclass
class Mapped:
    """The points and sketches of a request, its rejected data points by reason, the first
    rejection's message, and the cumulative streams' states to commit once stored."""

    samples: Samples
    sketches: Sketches
    rejected: Counter[str] = field(default_factory=Counter)
    first_error: str | None = None
    pending: dict[Series, Histogram] = field(default_factory=dict)

    @property
    def sketch_count(self) -> int:
        return int(np.count_nonzero(self.sketches.keys == SCALE_KEY))


def map_request(
    request: ExportMetricsServiceRequest, now_ns: int, streams: CumulativeStreams
) -> Mapped:
    """Every data point of `request`; rejected ones counted, the others mapped as above."""
    points: list[Point] = []
    sketches: list[tuple[Series, Histogram]] = []
    rejected: Counter[str] = Counter()
    first_error: str | None = None
    pending: dict[Series, Histogram] = {}
    for resource_metrics in request.resource_metrics:
        tags = resource_tags(resource_metrics.resource.attributes)
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                try:
                    for error in _metric(metric, tags, now_ns, points, sketches, streams, pending):
                        rejected[error.reason] += 1
                        first_error = first_error or str(error)
                except ParseError as error:  # the whole metric: count its points
                    rejected[error.reason] += max(_point_count(metric), 1)
                    first_error = first_error or str(error)
    return Mapped(
        Samples.from_points(points), sketch_rows(sketches), rejected, first_error, pending
    )


def resource_tags(attributes: Iterable[KeyValue]) -> dict[str, str]:
    return {
        RESOURCE_TAGS.get(key, key): value
        for key, value in attribute_tags(attributes).items()
        if not key.startswith(UNTAGGED_PREFIX)
    }


def attribute_tags(attributes: Iterable[KeyValue]) -> dict[str, str]:
    tags = {}
    for attribute in attributes:
        text = _text(attribute.value)
        if attribute.key and text:
            tags[attribute.key] = text
    return tags


def _text(value: AnyValue) -> str | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    return None


def _metric(
    metric: Metric,
    tags: dict[str, str],
    now_ns: int,
    points: list[Point],
    sketches: list[tuple[Series, Histogram]],
    streams: CumulativeStreams,
    pending: dict[Series, Histogram],
) -> Iterator[ParseError]:
    """Map the metric's points into `points` and `sketches`; yield each rejected point's
    error. Raises ParseError when the metric as a whole cannot be read."""
    name = metric.name
    if not name:
        raise ParseError("no_name", "", "a metric needs a name")
    kind = metric.WhichOneof("data")
    if kind == "gauge":
        yield from _each(name, metric.gauge.data_points, _number, tags, now_ns, points)
    elif kind == "sum":
        _temporality(metric.sum.aggregation_temporality, name)
        yield from _each(name, metric.sum.data_points, _number, tags, now_ns, points)
    elif kind == "histogram":
        _temporality(metric.histogram.aggregation_temporality, name)
        yield from _each(name, metric.histogram.data_points, _histogram, tags, now_ns, points)
    elif kind == "summary":
        yield from _each(name, metric.summary.data_points, _summary, tags, now_ns, points)
    elif kind == "exponential_histogram":
        histogram = metric.exponential_histogram
        _temporality(histogram.aggregation_temporality, name)
        yield from _exponential(histogram, name, tags, now_ns, sketches, streams, pending)
    else:
        raise ParseError(
            "no_data",
            name,
            "a metric needs a gauge, sum, histogram, exponential histogram or summary",
        )


def _temporality(temporality: int, name: str) -> None:
    if temporality not in (AGGREGATION_TEMPORALITY_CUMULATIVE, AGGREGATION_TEMPORALITY_DELTA):
        raise ParseError("temporality", name, "aggregation temporality must be delta or cumulative")


def _recorded(flags: int) -> bool:
    return not flags & DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK


P = TypeVar("P", NumberDataPoint, HistogramDataPoint, SummaryDataPoint)
Rows = list[tuple[Series, float]]


def _each(
    name: str,
    data_points: Iterable[P],
    rows_of: Callable[[str, P, dict[str, str]], Rows],
    tags: dict[str, str],
    now_ns: int,
    points: list[Point],
) -> Iterator[ParseError]:
    """Each recorded point's rows added to `points` whole, or its error yielded."""
    for point in data_points:
        if not _recorded(point.flags):
            continue
        try:
            rows = rows_of(name, point, tags | attribute_tags(point.attributes))
        except ParseError as error:
            yield error
            continue
        time_ns = point.time_unix_nano or now_ns
        points.extend((series, time_ns, value) for series, value in rows)


def _finite(name: str, rows: Rows, what: str) -> Rows:
    if not all(math.isfinite(value) for _, value in rows):
        raise ParseError("not_finite", name, f"{what} must be finite")
    return rows


def _number(name: str, point: NumberDataPoint, tags: dict[str, str]) -> Rows:
    kind = point.WhichOneof("value")
    if kind is None:
        raise ParseError("no_value", name, "a number data point needs as_int or as_double")
    value = float(point.as_double if kind == "as_double" else point.as_int)
    return _finite(name, [(Series.of(name, tags), value)], "the value")


def _histogram(name: str, point: HistogramDataPoint, tags: dict[str, str]) -> Rows:
    bounds = list(point.explicit_bounds)
    counts = list(point.bucket_counts)
    if counts and len(counts) != len(bounds) + 1:
        raise ParseError(
            "bad_buckets",
            name,
            f"{len(counts)} bucket counts for {len(bounds)} bounds: "
            "there must be one count more than bounds",
        )
    if not all(math.isfinite(b) for b in bounds) or any(b >= c for b, c in pairwise(bounds)):
        raise ParseError("bad_buckets", name, "explicit bounds must be finite and increasing")
    fields = [("count", float(point.count))]
    fields += [(f, getattr(point, f)) for f in ("sum", "min", "max") if point.HasField(f)]
    rows = [(Series.of(f"{name}.{f}", tags), value) for f, value in fields]
    below = np.cumsum(np.asarray(counts, np.float64)).tolist() if counts else []
    for bound, count in zip([*bounds, math.inf], below, strict=False):
        le = "+Inf" if bound == math.inf else repr(float(bound))
        rows.append((Series.of(f"{name}.bucket", tags | {"le": le}), count))
    return _finite(name, rows, "sum, min and max")


def _summary(name: str, point: SummaryDataPoint, tags: dict[str, str]) -> Rows:
    rows = [
        (Series.of(f"{name}.count", tags), float(point.count)),
        (Series.of(f"{name}.sum", tags), point.sum),
    ]
    for quantile in point.quantile_values:
        if not 0 <= quantile.quantile <= 1:
            raise ParseError("bad_quantile", name, f"quantile {quantile.quantile} is not in 0..1")
        key = repr(float(quantile.quantile))
        rows.append((Series.of(name, tags | {"quantile": key}), quantile.value))
    return _finite(name, rows, "sum and quantile values")


def _exponential(
    histogram: ExponentialHistogram,
    name: str,
    tags: dict[str, str],
    now_ns: int,
    sketches: list[tuple[Series, Histogram]],
    streams: CumulativeStreams,
    pending: dict[Series, Histogram],
) -> Iterator[ParseError]:
    cumulative = histogram.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
    for point in histogram.data_points:
        if not _recorded(point.flags):
            continue
        try:
            buckets = from_point(point, name, point.time_unix_nano or now_ns)
        except ParseError as error:
            yield error
            continue
        series = Series.of(name, tags | attribute_tags(point.attributes))
        added = streams.increase(series, buckets, pending) if cumulative else buckets
        if added is not None and len(added.keys):
            sketches.append((series, added))


def _point_count(metric: Metric) -> int:
    kind = metric.WhichOneof("data")
    return 0 if kind is None else len(getattr(metric, kind).data_points)
