"""The Store protocol on both backends: exact round trips, last write wins, rollups combined,
listings, the series limit, retention and reopening, for points and for sketches (late ones
marking dirty buckets); InfluxDB's sketch bucket text decoded by Hypothesis, and sketches
spooled while influxd is away."""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import influx_sketches as sketch_lines
from storage.embedded import EmbeddedStore
from storage.errors import StoreClosedError
from storage.influx import InfluxConfig, InfluxStore
from storage.records import Rollups, Samples, Series, Sketches
from storage.sketches import build
from tests.backends import Influxd, StoreOpener, checkpoint
from tests.launcher import free_port
from tests.storage.sketch_cases import rows_of
from tests.storage.test_embedded import HOUR_NS, A, B, C, rollups


def test_points_read_back_sorted_by_series_and_time(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    result = store.write(Samples.from_points([(A, 30, 3.0), (B, 10, 1.5), (A, 10, 1.0)]))
    assert result.accepted == 3
    assert store.read([B, A], 0, 100).points() == [(B, 10, 1.5), (A, 10, 1.0), (A, 30, 3.0)]
    assert store.read(None, 0, 100).points() == [(A, 10, 1.0), (A, 30, 3.0), (B, 10, 1.5)]


def test_last_write_wins_for_the_same_series_and_timestamp(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    store.write(Samples.from_points([(A, 10, 1.0), (A, 10, 2.0)]))
    checkpoint(store)
    store.write(Samples.from_points([(A, 10, 3.0), (A, 5, 0.5)]))
    assert store.read([A], 0, 100).points() == [(A, 5, 0.5), (A, 10, 3.0)]
    checkpoint(store)
    store.write(Samples.from_points([(A, 10, 4.0)]))
    assert store.read([A], 0, 100).points() == [(A, 5, 0.5), (A, 10, 4.0)]


def test_range_is_half_open_and_unknown_series_are_empty(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    store.write(Samples.from_points([(A, t, float(t)) for t in range(0, 100, 10)]))
    got = store.read([Series("nope"), A], 20, 50)
    assert got.points() == [(A, 20, 20.0), (A, 30, 30.0), (A, 40, 40.0)]
    assert got.series == (Series("nope"), A)
    assert store.read([A], 50, 50).points() == []


def test_reopen_after_close_keeps_points_series_and_watermarks(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    store.write(Samples.from_points([(A, 1, 1.0), (C, 2, 2.0)]))
    store.write_rollups("1m", rollups([(A, 0, 1, 1, 1, 1, 1)]), watermark_ns=60)
    store.close()
    store = open_any_store()
    store.write(Samples.from_points([(B, 3, 3.0)]))
    store.close()
    store = open_any_store()
    assert store.read(None, 0, 10).points() == [(A, 1, 1.0), (B, 3, 3.0), (C, 2, 2.0)]
    assert store.watermark("1m") == 60
    assert store.watermark("1h") is None
    assert store.read_rollups("1m", [A], 0, 60).sum.tolist() == [1.0]
    assert store.series_count() == 3


def test_a_rollup_row_replaces_the_stored_row_of_its_bucket(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    store.write_rollups("1m", rollups([(A, 60, 1.0, 5.0, 6.0, 2.0, 5.0)]), watermark_ns=120)
    checkpoint(store)
    store.write_rollups(
        "1m",
        rollups([(A, 60, 0.5, 3.0, 3.5, 2.0, 0.5), (B, 0, 2.0, 2.0, 2.0, 1.0, 2.0)]),
        watermark_ns=180,
    )
    store.write_rollups("1m", rollups([(A, 60, 4.0, 9.0, 13.0, 3.0, 9.0)]), watermark_ns=240)
    got = store.read_rollups("1m", [A, B], 0, 600)
    assert got.index.tolist() == [0, 1]
    assert got.bucket_ns.tolist() == [60, 0]
    assert got.min.tolist() == [4.0, 2.0]
    assert got.max.tolist() == [9.0, 2.0]
    assert got.sum.tolist() == [13.0, 2.0]
    assert got.count.tolist() == [3.0, 1.0]
    assert got.last.tolist() == [9.0, 2.0]
    assert store.watermark("1m") == 240
    assert len(store.read_rollups("10m", None, 0, 600)) == 0


def test_rollups_of_the_raw_tier_are_refused(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    with pytest.raises(ValueError, match="rollup tier"):
        store.write_rollups("raw", Rollups.empty(), 0)


def test_metrics_and_series_listings_use_globs_and_sort(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    store.write(Samples.from_points([(C, 1, 1.0), (B, 1, 1.0), (A, 1, 1.0)]))
    assert store.metrics() == ["cpu.user", "mem.used"]
    assert store.metrics("cpu.*") == ["cpu.user"]
    assert store.metrics("*.used") == ["mem.used"]
    assert store.metrics("disk*") == []
    assert store.series("cpu.user") == [A, B]
    assert store.series() == [A, B, C]
    store.write(Samples.from_points([(Series("cpu.idle"), 2, 0.0)]))
    assert store.metrics("cpu.*") == ["cpu.idle", "cpu.user"]


def test_new_series_beyond_max_series_are_refused_and_counted(open_any_store: StoreOpener) -> None:
    store = open_any_store(max_series=2)
    assert store.write(Samples.from_points([(A, 1, 1.0), (B, 1, 1.0)])).accepted == 2
    result = store.write(Samples.from_points([(C, 2, 1.0), (A, 2, 2.0), (C, 3, 1.0)]))
    assert (result.accepted, result.refused_points, result.refused_series) == (1, 2, 1)
    assert store.read(None, 0, 10).points() == [(A, 1, 1.0), (A, 2, 2.0), (B, 1, 1.0)]
    assert store.series_count() == 2


def test_retention_drops_old_points_per_tier(open_any_store: StoreOpener, tiers) -> None:
    store = open_any_store()
    raw_retention = tiers[0].retention_ns
    now = 10 * raw_retention
    old, new = now - raw_retention - HOUR_NS, now - HOUR_NS
    store.write(Samples.from_points([(A, old, 1.0)]))
    store.write_rollups("1h", rollups([(A, old, 1, 1, 1, 1, 1)]), watermark_ns=old)
    checkpoint(store)
    store.write(Samples.from_points([(A, new, 2.0), (B, old, 3.0)]))
    # InfluxDB's writers mark every old point's buckets dirty, and retention keeps the raw
    # points of a dirty bucket: let passes (that found nothing to write) clear them first.
    for tier in ("1m", "10m", "1h"):
        store.write_rollups(tier, Rollups.empty(), now, store.dirty(tier))
    store.apply_retention(now)
    assert store.read(None, 0, now).points() == [(A, new, 2.0)]
    assert store.read_rollups("1h", [A], 0, now).bucket_ns.tolist() == [old]  # 730 d kept
    checkpoint(store)
    store.close()
    store = open_any_store()
    assert store.read(None, 0, now).points() == [(A, new, 2.0)]
    if isinstance(store, EmbeddedStore):
        assert list((store._root / "blocks" / "raw").iterdir()) != []


def test_use_after_close_raises(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    store.close()
    with pytest.raises(StoreClosedError):
        store.write(Samples.from_points([(A, 1, 1.0)]))
    with pytest.raises(StoreClosedError):
        store.read(None, 0, 10)


# -- sketches -------------------------------------------------------------------------------

LATENCY_A = Series.of("api.latency", {"host": "a"})
LATENCY_B = Series.of("api.latency", {"host": "b"})


def sketch(series: Series, ts_ns: int, values: list[float], weights: list[float] | None = None):
    """One sketch of `values` (each counted `weights` times) for `series` at `ts_ns`."""
    group = np.zeros(len(values), np.int64)
    weight = np.ones(len(values)) if weights is None else np.asarray(weights, np.float64)
    _, keys, counts = build(group, np.asarray(values, np.float64), weight)
    return Sketches(
        (series,), np.zeros(len(keys), np.int32), np.full(len(keys), ts_ns), keys, counts
    )


WIDE = [0.0, 0.25, 1e-9, 3.5, 3.5, 120.0, 7e5, -2.0, -2.0, -1e-3, 5e-324, 1.7e300]


def test_sketches_read_back_exactly_sorted_by_series_time_and_key(
    open_any_store: StoreOpener,
) -> None:
    store = open_any_store()
    a_late = sketch(LATENCY_A, 30, WIDE, [0.5] * 6 + [1 / 3] * 6)
    a_early = sketch(LATENCY_A, 10, [2.0, 4.0, 4.0])
    b = sketch(LATENCY_B, 20, [-5.0, 0.0])
    assert store.write(Samples.empty(), Sketches.concat([a_late, b, a_early])).accepted == 0
    got = store.read_sketches("raw", [LATENCY_B, Series("nope"), LATENCY_A], 0, 100)
    assert got.series == (LATENCY_B, Series("nope"), LATENCY_A)
    assert rows_of(got) == rows_of(Sketches.concat([b, a_early, a_late]))
    assert got.index.tolist() == sorted(got.index.tolist())
    everything = store.read_sketches("raw", None, 0, 100)
    assert rows_of(everything) == rows_of(Sketches.concat([a_early, a_late, b]))
    assert rows_of(store.read_sketches("raw", [LATENCY_A], 11, 30)) == []  # half open
    assert store.series("api.latency") == [LATENCY_A, LATENCY_B]  # sketch-only series listed


def test_a_read_of_every_series_lists_only_series_with_sketches(
    open_any_store: StoreOpener,
) -> None:
    store = open_any_store()
    store.write(Samples.from_points([(A, 10, 1.0), (B, 10, 2.0)]), sketch(LATENCY_B, 10, [1.0]))
    store.write_rollups("1m", rollups([(C, 0, 1, 1, 1, 1, 1)]), 60, sketches=sketch(A, 0, [1.0]))
    assert store.read_sketches("raw", None, 0, 100).series == (LATENCY_B,)
    assert store.read_sketches("1m", None, 0, 100).series == (A,)
    assert store.read_sketches("1h", None, 0, 100).series == ()
    assert store.read(None, 0, 100).series == (A, B)


def test_the_last_sketch_written_replaces_the_earlier_whole(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    many = sketch(LATENCY_A, 10, [1.0, 10.0, 100.0, 1000.0, -1.0, 0.0])
    store.write(Samples.empty(), many)
    checkpoint(store)
    fewer = sketch(LATENCY_A, 10, [5.0])
    store.write(Samples.empty(), fewer)
    assert rows_of(store.read_sketches("raw", [LATENCY_A], 0, 100)) == rows_of(fewer)
    checkpoint(store)
    # In one write too: the later of two sketches of a series and time.
    last = sketch(LATENCY_A, 10, [7.0, 70.0])
    store.write(Samples.empty(), Sketches.concat([many, last]))
    assert rows_of(store.read_sketches("raw", None, 0, 100)) == rows_of(last)


def test_reopening_keeps_sketches_of_every_tier(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    raw = sketch(LATENCY_A, 10, WIDE)
    minute = sketch(LATENCY_A, 0, [1.0, 2.0, 3.0])
    store.write(Samples.from_points([(A, 10, 1.0)]), raw)
    store.write_rollups("1m", Rollups.empty(), 60, sketches=minute)
    store.close()
    store = open_any_store()
    assert rows_of(store.read_sketches("raw", None, 0, 100)) == rows_of(raw)
    assert rows_of(store.read_sketches("1m", None, 0, 100)) == rows_of(minute)
    assert store.watermark("1m") == 60
    assert store.series() == [LATENCY_A, A]


def test_a_rollup_sketch_replaces_the_stored_sketch_of_its_bucket(
    open_any_store: StoreOpener,
) -> None:
    store = open_any_store()
    wide = sketch(LATENCY_A, 60, WIDE)
    store.write_rollups("1m", rollups([(A, 60, 1, 5, 6, 2, 5)]), 120, sketches=wide)
    checkpoint(store)
    narrow = sketch(LATENCY_A, 60, [2.0, 2.0])
    other = sketch(LATENCY_B, 0, [9.0])
    store.write_rollups("1m", Rollups.empty(), 180, sketches=Sketches.concat([narrow, other]))
    got = store.read_sketches("1m", [LATENCY_A, LATENCY_B], 0, 600)
    assert rows_of(got) == rows_of(Sketches.concat([narrow, other]))
    assert store.read_rollups("1m", [A], 0, 600).sum.tolist() == [6.0]
    assert store.watermark("1m") == 180
    assert len(store.read_sketches("10m", None, 0, 600)) == 0
    assert len(store.read_sketches("raw", None, 0, 600)) == 0


def test_a_late_sketch_marks_its_bucket_in_each_tier(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    for tier in ("1m", "10m", "1h"):
        store.write_rollups(tier, Rollups.empty(), 10 * HOUR_NS, store.dirty(tier))
    store.write(Samples.empty(), sketch(LATENCY_A, 9 * HOUR_NS - 50 * 60 * 10**9 + 7, [1.0]))
    bucket = 9 * HOUR_NS - 50 * 60 * 10**9
    dirty = {t: store.dirty(t).for_readers().tolist() for t in ("1m", "10m", "1h")}
    assert dirty == {"1m": [bucket], "10m": [bucket], "1h": [8 * HOUR_NS]}


def test_retention_drops_old_sketches_per_tier(open_any_store: StoreOpener, tiers) -> None:
    store = open_any_store()
    raw_retention = tiers[0].retention_ns
    now = 10 * raw_retention
    old, new = now - raw_retention - HOUR_NS, now - HOUR_NS
    older = now - 15 * 24 * HOUR_NS  # past the 14 days of the 1m tier
    store.write(Samples.empty(), Sketches.concat([sketch(A, old, [1.0]), sketch(A, new, [2.0])]))
    store.write_rollups(
        "1m",
        Rollups.empty(),
        now,
        sketches=Sketches.concat([sketch(A, older, [3.0]), sketch(A, old, [4.0])]),
    )
    store.write_rollups("1h", Rollups.empty(), now, sketches=sketch(A, older, [5.0]))
    for tier in ("1m", "10m", "1h"):  # passes that clear the marks the old sketches left
        store.write_rollups(tier, Rollups.empty(), now, store.dirty(tier))
    store.apply_retention(now)
    checkpoint(store)
    store.close()
    store = open_any_store()
    assert rows_of(store.read_sketches("raw", None, 0, now)) == rows_of(sketch(A, new, [2.0]))
    assert rows_of(store.read_sketches("1m", None, 0, now)) == rows_of(sketch(A, old, [4.0]))
    assert rows_of(store.read_sketches("1h", None, 0, now)) == rows_of(sketch(A, older, [5.0]))


finite = st.floats(-1e300, 1e300, allow_nan=False, allow_subnormal=True)
weighted = st.lists(st.tuples(finite, st.floats(1e-3, 1e3)), min_size=1, max_size=30)


def test_any_sketches_round_trip_exactly(open_any_store: StoreOpener) -> None:
    store = open_any_store()
    cases = itertools.count()

    @settings(max_examples=25, deadline=None)
    @given(st.lists(weighted, min_size=1, max_size=4), st.integers(-4, 12))
    def round_trip(parts: list[list[tuple[float, float]]], scale: int) -> None:
        series = Series.of("latency", {"case": str(next(cases))})  # one store, a new series
        values = np.asarray([v for part in parts for v, _ in part])
        weights = np.asarray([w for part in parts for _, w in part])
        group = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
        label, keys, counts = build(group, values, weights, scale)
        sent = Sketches((series,), np.zeros(len(keys), np.int32), label * 10, keys, counts)
        store.write(Samples.empty(), sent)
        assert rows_of(store.read_sketches("raw", [series], 0, 100)) == rows_of(sent)

    round_trip()


@given(st.lists(st.text("0123456789-:,.e+x") | st.text(), max_size=4))
def test_any_bucket_text_decodes_or_raises_value_error(texts: list[str]) -> None:
    with contextlib.suppress(ValueError):
        sizes, keys, counts = sketch_lines.decode_buckets(texts)
        assert len(sizes) == len(texts)
        assert len(keys) == len(counts) == sizes.sum()


@pytest.mark.slow
def test_sketches_written_while_influxd_is_away_are_spooled_then_delivered(
    tmp_path: Path, influxd: Influxd, tiers
) -> None:
    database = influxd.new_database()
    away = InfluxConfig(f"http://127.0.0.1:{free_port()}", api="v1", database=database)
    sent = Sketches.concat([sketch(LATENCY_A, 10, WIDE), sketch(LATENCY_B, 20, [3.0])])
    with InfluxStore(away, tiers, tmp_path / "spool") as store:
        store.write(Samples.empty(), sent)
        assert store.spool_depth == 1
    config = InfluxConfig(influxd.url, api="v1", database=database)
    with InfluxStore(config, tiers, tmp_path / "spool", settle_ns=0) as store:
        deadline = time.monotonic() + 10
        while store.spool_depth and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rows_of(store.read_sketches("raw", None, 0, 100)) == rows_of(sent)
        assert store.dirty("1m").bucket_ns.tolist() == [0]  # delivered late: marked
