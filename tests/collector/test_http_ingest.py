"""HTTP ingest in front of a real embedded store: the series limit refuses exactly what is beyond
it, with a clear 400 counted on `/metrics`; concurrent bodies are all parsed and kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from collector.http_ingest import add_ingest_routes
from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from collector.store_writer import StoreWriter
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import Series
from tests.running import sample_value

MAX_SERIES = 50
NS = 1_000_000_000
T0 = int(time.time()) - 600  # recent: within the raw tier's retention


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "metrics", Settings().tiers(), max_series=MAX_SERIES) as store:
        yield store


class Ingest:
    def __init__(self, store: EmbeddedStore) -> None:
        self.stats = IngestStats()
        self.metrics = ServiceMetrics(self.stats, store.series_count)
        self.writer = StoreWriter(store, self.stats, self.metrics)
        self.app = web.Application()
        add_ingest_routes(self.app, self.writer, self.stats, 1 << 24)


@pytest.fixture
async def ingest(store: EmbeddedStore):
    ingest = Ingest(store)
    async with ingest.writer:
        yield ingest


def body(names: range, ts_s: int = T0) -> bytes:
    return "".join(f"m,host=h{i} v={i} {ts_s}\n" for i in names).encode()


async def test_new_series_beyond_the_limit_are_refused_exactly_and_counted(
    store: EmbeddedStore, ingest: Ingest, aiohttp_client
) -> None:
    client = await aiohttp_client(ingest.app)
    first = await client.post("/write?precision=s", data=body(range(10)))
    assert first.status == 204
    flood = await client.post("/write?precision=s", data=body(range(10, 110)))
    assert flood.status == 400
    error = (await flood.json())["error"]
    assert error == (
        "partial write: the series limit (--max-series) is reached: 60 points of new series "
        "dropped; raise --max-series or stop sending new tag values"
    )
    assert await asyncio.to_thread(store.series_count) == MAX_SERIES
    rendered = (await asyncio.to_thread(ingest.metrics.render)).decode()
    dropped = sample_value(
        rendered, "shipboard_dropped_total", protocol="influx", reason="series_limit"
    )
    assert dropped == 60
    assert sample_value(rendered, "shipboard_received_total", protocol="influx") == 50
    # Existing series are still taken; one more new series is refused on its own.
    again = await client.post("/write?precision=s", data=body(range(50), T0 + 10))
    assert again.status == 204
    one_more = await client.post("/write?precision=s", data=b"m,host=new v=1 %d\n" % (T0 + 20))
    assert one_more.status == 400
    assert "1 points of new series dropped" in (await one_more.json())["error"]
    assert ingest.stats.dropped["influx", "series_limit"] == 61
    assert ingest.stats.received["influx"] == 100


async def test_concurrent_bodies_are_each_parsed_and_kept(
    store: EmbeddedStore, ingest: Ingest, aiohttp_client
) -> None:
    client = await aiohttp_client(ingest.app)
    # Eight bodies at once, over as many connections: four shapes, each sent twice at two times.
    bodies = [body(range(k * 10, k * 10 + 10), T0 + t) for k in range(4) for t in (0, 1)]
    answers = await asyncio.gather(*(client.post("/write?precision=s", data=b) for b in bodies))
    assert [a.status for a in answers] == [204] * 8
    assert ingest.stats.received["influx"] == 80
    series = [Series("m.v", (("host", f"h{i}"),)) for i in range(40)]
    got = await asyncio.to_thread(store.read, series, 0, 2 * T0 * NS)
    points = sorted((str(s), t // NS, v) for s, t, v in got.points())
    assert points == sorted(
        (str(s), ts, float(i)) for i, s in enumerate(series) for ts in (T0, T0 + 1)
    )
