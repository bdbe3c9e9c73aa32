"""The metric store `shipboard run` uses, chosen by settings: embedded (default), InfluxDB or
VictoriaMetrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shipboard.settings import Settings
from storage.base import Store, StoreReader
from storage.embedded import EmbeddedStore
from storage.embedded_reader import EmbeddedReader
from storage.influx import InfluxConfig, InfluxStore
from storage.victoria import VictoriaStore


def open_store(settings: Settings) -> Store:
    """Open the configured store to write, its background thread not started yet (`with`
    starts it); blocking (call it through `asyncio.to_thread`)."""
    if settings.store == "embedded":
        return EmbeddedStore(
            settings.data_dir / "metrics", settings.tiers(), max_series=settings.max_series
        )
    if settings.store == "victoriametrics":
        return _victoria(settings, settings.data_dir / "spool")
    return _influx(settings, settings.data_dir / "spool")


def rolls_up_itself(settings: Settings) -> bool:
    """Whether the store computes its own rollups (VictoriaMetrics): no aggregator runs."""
    return settings.store == "victoriametrics"


@contextlib.asynccontextmanager
async def running_store(settings: Settings) -> AsyncIterator[Store]:
    """The configured store, open and with its background thread running, for the life of
    the block. Opening replays a log and closing checkpoints, so both run in a thread."""
    store = await asyncio.to_thread(open_store, settings)
    try:
        yield store.__enter__()  # starts a thread: quick
    finally:
        await asyncio.to_thread(store.close)


def open_reader(settings: Settings) -> StoreReader:
    """Open the configured store to read only, beside the process that writes it (the
    dashboards'): no spool, no WAL of its own."""
    if settings.store == "embedded":
        return EmbeddedReader(settings.data_dir / "metrics", settings.tiers())
    if settings.store == "victoriametrics":
        return _victoria(settings, None)
    return _influx(settings, None)


def _victoria(settings: Settings, spool_dir: Path | None) -> VictoriaStore:
    return VictoriaStore(
        settings.victoria(),
        settings.tiers(),
        spool_dir,
        spool_max_bytes=settings.spool_max_bytes,
        max_series=settings.max_series,
        latency_offset_s=settings.vm_latency_offset_s,
    )


def _influx(settings: Settings, spool_dir: Path | None) -> InfluxStore:
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
        settings.tiers(),
        spool_dir,
        spool_max_bytes=settings.spool_max_bytes,
        max_series=settings.max_series,
    )


class _SpoolCollector(Collector):
    """The spool's depth, read at scrape time."""

    def __init__(self, store: InfluxStore | VictoriaStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "shipboard_spool_depth",
            "Writes held in the on-disk spool until InfluxDB or VictoriaMetrics takes them.",
            value=self._store.spool_depth,
        )
        yield GaugeMetricFamily(
            "shipboard_spool_bytes",
            "Bytes the on-disk spool holds.",
            value=self._store.spool_bytes,
        )


def watch_store(registry: CollectorRegistry, store: Store) -> None:
    """Show the store's own health on `/metrics` (a remote store's spool depth)."""
    if isinstance(store, InfluxStore | VictoriaStore):
        registry.register(_SpoolCollector(store))
