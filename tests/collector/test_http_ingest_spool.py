"""HTTP ingest in front of an InfluxDB store that is away: writes are spooled and acknowledged
until the spool is full, then refused whole with 503; `/metrics` shows the spool depth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from collector.http_ingest import add_ingest_routes
from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from collector.store_writer import StoreWriter
from shipboard.settings import Settings
from shipboard.stores import watch_store
from storage.influx import InfluxConfig, InfluxStore
from tests.launcher import free_port
from tests.running import sample_value


@pytest.fixture
def unreachable_store(tmp_path: Path) -> Iterator[InfluxStore]:
    """An InfluxDB store whose server never answers, with room in its spool for one write."""
    config = InfluxConfig(f"http://127.0.0.1:{free_port()}", api="v1", timeout_s=0.5)
    store = InfluxStore(
        config, Settings().tiers(), tmp_path / "spool", spool_max_bytes=600, listing_ttl_s=60
    )
    yield store
    store.close()


async def test_ingest_answers_503_once_the_spool_is_full(
    unreachable_store: InfluxStore, aiohttp_client
) -> None:
    stats = IngestStats()
    metrics = ServiceMetrics(stats, lambda: 0)
    watch_store(metrics.registry, unreachable_store)
    async with StoreWriter(unreachable_store, stats, metrics) as writer:
        app = web.Application()
        add_ingest_routes(app, writer, stats, 1 << 20)
        client = await aiohttp_client(app)
        body = "\n".join(f"cpu,host=a usage={i} {i}" for i in range(12)).encode()
        first = await client.post("/write", data=body)
        assert first.status == 204  # spooled: durable, so acknowledged
        second = await client.post("/write", data=body)
        assert second.status == 503
        assert "spool" in (await second.json())["error"]
        assert sample_value(metrics.render().decode(), "shipboard_spool_depth") == 1
