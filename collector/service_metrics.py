"""Shipboard's own health as Prometheus metrics, served on `/metrics`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from collector.stats import IngestStats

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class _IngestCollector(Collector):
    """Reads the plain ingest counters at scrape time, so the hot path pays nothing for them."""

    def __init__(
        self, stats: IngestStats, series_count: Callable[[], int], gauges: dict[str, float]
    ) -> None:
        self._stats = stats
        self._series_count = series_count
        self._gauges = gauges

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        received = CounterMetricFamily(
            "shipboard_received", "Metrics and points accepted, by protocol.", labels=["protocol"]
        )
        for protocol, count in sorted(self._stats.received.items()):
            received.add_metric([protocol], count)
        yield received
        dropped = CounterMetricFamily(
            "shipboard_dropped",
            "Lines, points or values dropped, by protocol and reason (statsd overload: UDP"
            " datagrams the kernel dropped, the receive buffer full).",
            labels=["protocol", "reason"],
        )
        for (protocol, reason), count in sorted(self._stats.dropped.items()):
            dropped.add_metric([protocol, reason], count)
        yield dropped
        yield GaugeMetricFamily(
            "shipboard_series", "Series held by the store.", value=self._series_count()
        )
        for name, value in sorted(self._gauges.items()):
            yield GaugeMetricFamily(f"shipboard_{name}", name.replace("_", " ") + ".", value=value)


class ServiceMetrics:
    """The registry behind `/metrics`: ingest counters, flush and store-write latencies."""

    def __init__(self, stats: IngestStats, series_count: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.gauges: dict[str, float] = {}
        self.registry.register(_IngestCollector(stats, series_count, self.gauges))
        self.flush_seconds = Histogram(
            "shipboard_flush_duration_seconds",
            "Time to aggregate one StatsD flush.",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.store_write_seconds = Histogram(
            "shipboard_store_write_seconds",
            "Time for one durable store write, fsync included.",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.rollup_seconds = Histogram(
            "shipboard_rollup_duration_seconds",
            "Time of one rollup pass over every tier.",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
