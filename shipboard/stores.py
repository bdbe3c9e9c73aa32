"""The metric store `shipboard run` uses, chosen by settings: embedded (default) or InfluxDB."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shipboard.settings import Settings
from storage.base import Store
from storage.embedded import EmbeddedStore
from storage.influx import InfluxConfig, InfluxStore


def open_store(settings: Settings, *, readonly: bool = False) -> Store:
    """Open the configured store; blocking (call it through `asyncio.to_thread`). A reader
    (the dashboards process) gets no write path: no spool, no WAL of its own."""
    tiers = settings.tiers()
    if settings.store == "embedded":
        return EmbeddedStore(
            settings.data_dir / "metrics", tiers, max_series=settings.max_series, readonly=readonly
        )
    config = InfluxConfig(
        url=settings.influx_url,
        api=settings.influx_api,
        token=settings.influx_token,
        org=settings.influx_org,
        bucket=settings.influx_bucket,
        user=settings.influx_user,
        password=settings.influx_password,
        database=settings.influx_db,
    )
    return InfluxStore(
        config,
        tiers,
        None if readonly else settings.data_dir / "spool",
        spool_max_bytes=settings.spool_max_bytes,
        max_series=settings.max_series,
    )


class _SpoolCollector(Collector):
    """The spool's depth, read at scrape time."""

    def __init__(self, store: InfluxStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "shipboard_spool_depth",
            "Writes held in the on-disk spool until InfluxDB takes them.",
            value=self._store.spool_depth,
        )
        yield GaugeMetricFamily(
            "shipboard_spool_bytes",
            "Bytes the on-disk spool holds.",
            value=self._store.spool_bytes,
        )


def watch_store(registry: CollectorRegistry, store: Store) -> None:
    """Show the store's own health on `/metrics` (the InfluxDB store's spool depth)."""
    if isinstance(store, InfluxStore):
        registry.register(_SpoolCollector(store))
