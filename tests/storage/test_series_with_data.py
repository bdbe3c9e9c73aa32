"""`series_with_data` on every store: the series with a raw point in [start, end) (to the
millisecond, VictoriaMetrics' resolution), in the order asked or sorted, sketches not counting;
before the raw retention floor, those with a row of the coarsest rollup tier whose bucket
overlaps the range (embedded and InfluxDB: VictoriaMetrics rolls up from the raw points, within
its one retention)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from storage.base import in_order
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_MS, RAW, Samples, Series, Tier
from tests.backends import BACKENDS, QUERY_BACKENDS, StoreOpener, checkpoint
from tests.storage.test_embedded import rollups
from tests.storage.test_store_protocol import sketch

S = 1000 * NS_PER_MS
MIN, HOUR = 60 * S, 3600 * S
NOW = time.time_ns() // HOUR * HOUR  # realistic times: VictoriaMetrics keeps its retention
T0 = NOW - 6 * HOUR
A = Series.of("cpu", {"host": "a"})
B = Series.of("cpu", {"host": "b"})
C = Series.of("disk.free", {"mount": "/"})
SKETCHED = Series.of("latency", {"route": "/"})
TIERS = (
    Tier(RAW, 0, 2 * HOUR),
    Tier("1m", MIN, 24 * HOUR),
    Tier("1h", HOUR, 30 * 24 * HOUR),
)


@pytest.fixture(params=QUERY_BACKENDS)
def open_any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    opener = StoreOpener(request, request.param, tmp_path, TIERS)
    yield opener
    opener.close()


@pytest.fixture(params=BACKENDS)
def open_rolling_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    """The stores Shipboard's aggregator rolls up into."""
    opener = StoreOpener(request, request.param, tmp_path, TIERS)
    yield opener
    opener.close()


def test_the_series_with_a_point_in_the_range_answer(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    points = [(A, T0 + 10 * S, 1.0), (A, T0 + 20 * S, 2.0), (B, T0 + HOUR, 3.0)]
    store.write(Samples.from_points([*points, (C, T0 + 2 * HOUR, 4.0)]))
    store.write(Samples.empty(), sketch(SKETCHED, T0 + 10 * S, [0.5, 1.5]))
    for _ in range(2):  # in the head, then (embedded) in blocks
        assert store.series_with_data(None, T0, T0 + 3 * HOUR) == [A, B, C]
        assert store.series_with_data([C, B, A, C], T0, T0 + 3 * HOUR) == [C, B, A]
        assert store.series_with_data(None, T0, T0 + 10 * S) == []  # the end is left out
        assert store.series_with_data(None, T0 + 10 * S, T0 + 10 * S + NS_PER_MS) == [A]
        assert store.series_with_data([B, A], T0 + 20 * S, T0 + HOUR) == [A]
        assert store.series_with_data([B, A], T0 + 20 * S + NS_PER_MS, T0 + HOUR) == []
        assert store.series_with_data(None, T0 + 21 * S, T0 + HOUR + NS_PER_MS) == [B]
        assert store.series_with_data([Series("nope"), C], T0, NOW) == [C]
        assert store.series_with_data([], T0, NOW) == []
        assert store.series_with_data(None, T0 + HOUR, T0) == []  # end before start
        assert store.series_with_data(None, T0 + 3 * HOUR, NOW) == []
        assert store.series_with_data(None, -(2**63) + 1, 2**63 - 1) == [A, B, C]
        checkpoint(store)


def test_before_the_raw_floor_the_coarsest_rollups_count(open_rolling_store: StoreOpener) -> None:
    store = open_rolling_store()
    bucket = NOW - 5 * HOUR  # of 1h; the raw floor will be NOW - 2 h
    store.write(Samples.from_points([(A, bucket + 20 * MIN, 1.0), (B, NOW - HOUR, 2.0)]))
    # As a pass rolls up: the rows, the watermark, and the dirty marks (InfluxDB's) cleared.
    for tier, at in (("1m", bucket + 20 * MIN), ("1h", bucket)):
        rows = rollups([(A, at, 1, 1, 1, 1, 1)])
        store.write_rollups(tier, rows, bucket + HOUR, store.dirty(tier))
    assert store.series_with_data(None, bucket + 30 * MIN, bucket + 31 * MIN) == []  # raw only
    store.apply_retention(NOW)
    assert store.read([A], bucket, bucket + HOUR).points() == []  # the raw point is gone
    for _ in range(2):
        # The 1h row answers for its whole bucket: where in it the point was is not kept.
        assert store.series_with_data(None, bucket + 30 * MIN, bucket + 31 * MIN) == [A]
        assert store.series_with_data([B, A], bucket - HOUR, bucket + 1) == [A]
        assert store.series_with_data([A], bucket - HOUR, bucket) == []
        assert store.series_with_data([A], bucket + HOUR, NOW) == []
        assert store.series_with_data(None, bucket, NOW) == [A, B]
        assert store.series_with_data(None, NOW - 2 * HOUR, NOW) == [B]
        checkpoint(store)


MANY = [Series.of("m", {"h": str(i)}) for i in range(7)]  # the last is never written


@settings(max_examples=25, deadline=None)
@given(
    writes=st.lists(
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, 100)), min_size=1, max_size=6),
        min_size=1,
        max_size=40,  # past 16 writes the head sorts its chunks into parts
    ),
    checkpoints=st.sets(st.integers(0, 39)),
    windows=st.lists(st.tuples(st.integers(-5, 105), st.integers(-5, 105)), max_size=6),
    asked=st.none() | st.lists(st.integers(0, 6), max_size=8),
)
# 20 writes: the first 16 sorted into a head part, the rest chunks; then in blocks, and a part.
@pytest.mark.slow
@example([[(i % 6, i)] for i in range(20)], set(), [(0, 5), (16, 20)], None)
@example([[(i % 6, i)] for i in range(40)], {19}, [(0, 5), (20, 25), (36, 40)], [5, 1, 6])
def test_embedded_presence_is_what_a_read_finds(
    writes: list[list[tuple[int, int]]],
    checkpoints: set[int],
    windows: list[tuple[int, int]],
    asked: list[int] | None,
) -> None:
    """Across blocks, sorted head parts and unsorted chunks, for any series asked for."""
    series = None if asked is None else [MANY[i] for i in asked]
    with tempfile.TemporaryDirectory() as home, EmbeddedStore(Path(home), TIERS) as store:
        for i, batch in enumerate(writes):
            store.write(Samples.from_points([(MANY[m], T0 + t * S, 1.0) for m, t in batch]))
            if i in checkpoints:
                store.checkpoint()
        for lo, hi in [*windows, (0, 101)]:
            read = store.read(series, T0 + lo * S, T0 + hi * S)
            found = in_order({read.series[i] for i in read.index.tolist()}, series)
            assert store.series_with_data(series, T0 + lo * S, T0 + hi * S) == found
