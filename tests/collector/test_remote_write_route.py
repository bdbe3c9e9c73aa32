"""`POST /api/v1/write` over real HTTP in front of a real embedded store: Prometheus' request
gives exactly its points, answered 204; bodies that do not decode are 400 with nothing stored;
invalid series are a partial write; 413, 415 and the 503 a full spool gives; `/metrics` counts
what came in and what was dropped, by reason."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from collector.http_ingest import add_ingest_routes
from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from collector.store_writer import StoreWriter
from shipboard.settings import Settings
from storage.base import Store
from storage.embedded import EmbeddedStore
from storage.influx import InfluxStore
from storage.records import NS_PER_MS, Series
from storage.stale_markers import marker_series
from tests.collector.prompb_wire import (
    TimeSeries,
    WriteRequest,
    renamed,
    stored,
    write_requests,
)
from tests.collector.test_http_ingest_spool import unreachable_store  # noqa: F401 (a fixture)
from tests.collector.test_remote_write import STALE, decodes
from tests.running import sample_value

NOW_MS = int(time.time() * 1000)
RECENT = st.integers(NOW_MS - 3_600_000, NOW_MS + 60_000)  # within the raw tier's retention
# As Prometheus sends them.
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "Prometheus/2.42.0",
}
LIMIT = 1 << 20


class Ingest:
    def __init__(self, store: Store, limit: int = LIMIT) -> None:
        self.store = store
        self.stats = IngestStats()
        self.metrics = ServiceMetrics(self.stats, store.series_count)
        self.writer = StoreWriter(store, self.stats, self.metrics)
        self.app = web.Application()
        add_ingest_routes(self.app, self.writer, self.stats, limit)

    def metric(self, name: str, **labels: str) -> float:
        return sample_value(self.metrics.render().decode(), name, **labels)

    def dropped(self, reason: str) -> float:
        return self.metric("shipboard_dropped_total", protocol="remote_write", reason=reason)

    def everything(self) -> list[tuple[Series, int, float]]:
        return self.store.read(None, -(2**62), 2**62).points()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "metrics", Settings().tiers()) as store:
        yield store


@pytest.fixture
async def ingest(store: EmbeddedStore) -> AsyncIterator[Ingest]:
    running = Ingest(store)
    async with running.writer:
        yield running


@pytest.fixture
async def client(ingest: Ingest, aiohttp_client):
    return await aiohttp_client(ingest.app)


async def test_prometheus_request_is_stored_exactly_and_answered_204(
    ingest: Ingest, client
) -> None:
    request = WriteRequest(
        (
            TimeSeries(
                (("__name__", "up"), ("instance", "127.0.0.1:9090"), ("job", "prometheus")),
                ((1.0, NOW_MS - 2000), (1.0, NOW_MS - 1000)),
            ),
            TimeSeries(
                (("__name__", "http_requests_total"), ("code", "500")), ((7.0, NOW_MS - 1000),)
            ),
        ),
        ("up",),
    )
    response = await client.post("/api/v1/write", data=request.body(), headers=HEADERS)
    assert response.status == 204, await response.text()
    assert ingest.everything() == stored(request.points())
    up = Series.of("up", {"instance": "127.0.0.1:9090", "job": "prometheus"})
    assert ingest.everything()[-1] == (up, (NOW_MS - 1000) * NS_PER_MS, 1.0)
    assert ingest.metric("shipboard_received_total", protocol="remote_write") == 3


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=write_requests(RECENT))
async def test_random_write_requests_round_trip_exactly(
    ingest: Ingest, client, request: WriteRequest
) -> None:
    request = renamed(request, f"e{next(EXAMPLES)}.")
    response = await client.post("/api/v1/write", data=request.body(), headers=HEADERS)
    assert response.status == 204, await response.text()
    series = sorted({s for s, _, _ in request.points()}, key=str)
    got = ingest.store.read(series, -(2**62), 2**62).points() if series else []
    assert sorted(got, key=lambda p: (str(p[0]), p[1])) == stored(request.points())


EXAMPLES = itertools.count()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(min_size=1, max_size=200))
async def test_arbitrary_bytes_are_a_400_and_nothing_is_stored(
    ingest: Ingest, client, body: bytes
) -> None:
    assume(not decodes(body))
    before = ingest.dropped("bad_snappy") + ingest.dropped("bad_protobuf")
    response = await client.post("/api/v1/write", data=body, headers=HEADERS)
    assert response.status == 400
    assert "body is not" in (await response.json())["error"]
    assert ingest.everything() == []
    assert ingest.store.series_count() == 0
    assert ingest.dropped("bad_snappy") + ingest.dropped("bad_protobuf") == before + 1


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=write_requests(RECENT).filter(lambda r: len(r.body()) > 1), data=st.data())
async def test_valid_bodies_cut_or_changed_are_a_400_with_nothing_stored(
    ingest: Ingest, client, request: WriteRequest, data: st.DataObject
) -> None:
    body = bytearray(request.body())
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(1, len(body) - 1))]
    else:
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] ^= data.draw(st.integers(1, 255))
    assume(not decodes(bytes(body)))
    response = await client.post("/api/v1/write", data=bytes(body), headers=HEADERS)
    assert response.status == 400
    assert ingest.everything() == []


async def test_invalid_series_are_a_partial_write_naming_the_first(ingest: Ingest, client) -> None:
    request = WriteRequest(
        (
            TimeSeries((("job", "x"),), ((1.0, NOW_MS),)),
            TimeSeries((("__name__", "ok"),), ((2.0, NOW_MS),)),
            TimeSeries((("__name__", "m"), ("a", "1"), ("a", "2")), ((1.0, NOW_MS),)),
        )
    )
    response = await client.post("/api/v1/write", data=request.body(), headers=HEADERS)
    assert response.status == 400
    assert (await response.json())["error"] == (
        'partial write: 2 invalid samples dropped, the first: series {job="x"} has no __name__'
        " (metric name)"
    )
    assert ingest.everything() == [(Series("ok"), NOW_MS * NS_PER_MS, 2.0)]
    assert ingest.dropped("no_name") == 1
    assert ingest.dropped("bad_label") == 1


async def test_what_is_not_stored_is_counted_and_answered_204(ingest: Ingest, client) -> None:
    values = ((float("nan"), NOW_MS), (STALE, NOW_MS + 1))
    request = WriteRequest((TimeSeries((("__name__", "h"),), values, exemplars=3),))
    response = await client.post("/api/v1/write", data=request.body(), headers=HEADERS)
    assert response.status == 204
    # The stale marker is kept, as a point of the hidden series of h's markers.
    assert ingest.everything() == [(marker_series(Series("h")), (NOW_MS + 1) * NS_PER_MS, 1.0)]
    assert ingest.store.metrics() == []
    assert ingest.dropped("exemplar") == 3
    assert ingest.dropped("non_finite") == 1


async def test_a_body_over_the_limit_is_a_413(store: EmbeddedStore, aiohttp_client) -> None:
    small = Ingest(store, limit=1000)
    async with small.writer:
        client = await aiohttp_client(small.app)
        big = WriteRequest((TimeSeries((("__name__", "x" * 5000),), ((1.0, NOW_MS),)),))
        inflated = await client.post("/api/v1/write", data=big.body(), headers=HEADERS)
        assert inflated.status == 413
        assert "over the 1000-byte limit (--max-body)" in (await inflated.json())["error"]
        raw = await client.post("/api/v1/write", data=b"\x00" * 2000, headers=HEADERS)
        assert raw.status == 413
        assert small.everything() == []
        assert small.dropped("too_large") == 2


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({"Content-Encoding": "gzip"}, "Content-Encoding 'gzip' is not taken"),
        ({"Content-Type": "application/json"}, "Content-Type 'application/json' is not taken"),
        (
            {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
            "remote write message 'io.prometheus.write.v2.Request' is not taken",
        ),
    ],
)
async def test_another_encoding_or_remote_write_2_is_a_415(
    ingest: Ingest, client, headers: dict[str, str], said: str
) -> None:
    body = WriteRequest((TimeSeries((("__name__", "up"),), ((1.0, NOW_MS),)),)).body()
    response = await client.post("/api/v1/write", data=body, headers=HEADERS | headers)
    assert response.status == 415
    assert said in (await response.json())["error"]
    assert ingest.everything() == []
    v1 = HEADERS | {"Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"}
    assert (await client.post("/api/v1/write", data=body, headers=v1)).status == 204


async def test_a_full_spool_is_a_503_which_prometheus_retries(
    unreachable_store: InfluxStore,  # noqa: F811 (the fixture imported above)
    aiohttp_client,
) -> None:
    ingest = Ingest(unreachable_store)
    async with ingest.writer:
        client = await aiohttp_client(ingest.app)
        samples = tuple((float(i), NOW_MS + i) for i in range(6))
        body = WriteRequest((TimeSeries((("__name__", "cpu"),), samples),)).body()
        first = await client.post("/api/v1/write", data=body, headers=HEADERS)
        assert first.status == 204  # spooled: durable, so acknowledged
        second = await client.post("/api/v1/write", data=body, headers=HEADERS)
        assert second.status == 503
        assert "spool" in (await second.json())["error"]
