"""The store writer and the batching sink over a real embedded store: the sink writes every
interval while in its block, and what it still holds when the block ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from collector.store_writer import BatchingSink, StoreWriter
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series

NOW_NS = (int(time.time()) - 60) * NS_PER_S  # within the raw tier's retention


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "metrics", Settings().tiers()) as store:
        yield store


def points(*values: float) -> Samples:
    return Samples.from_points(
        (Series("sink.test"), NOW_NS + i * NS_PER_S, v) for i, v in enumerate(values)
    )


async def stored(store: EmbeddedStore) -> list[float]:
    got = await asyncio.to_thread(store.read, [Series("sink.test")], 0, 2 * NOW_NS)
    return [v for _, _, v in got.points()]


async def test_leaving_the_sink_writes_what_it_still_holds(store: EmbeddedStore) -> None:
    stats = IngestStats()
    async with StoreWriter(store, stats, ServiceMetrics(stats, store.series_count)) as writer:
        async with BatchingSink(writer, stats, interval_s=3600) as sink:
            sink.add(points(1.0, 2.0), "statsd")
            assert await stored(store) == []  # an hour before its round
        assert await stored(store) == [1.0, 2.0]


async def test_the_sink_writes_every_interval_while_in_its_block(store: EmbeddedStore) -> None:
    stats = IngestStats()
    async with (
        StoreWriter(store, stats, ServiceMetrics(stats, store.series_count)) as writer,
        BatchingSink(writer, stats, interval_s=0.05) as sink,
    ):
        sink.add(points(3.0), "graphite")
        async with asyncio.timeout(5):
            while not await stored(store):  # noqa: ASYNC110 (the store has no event to wait on)
                await asyncio.sleep(0.02)
    assert await stored(store) == [3.0]
