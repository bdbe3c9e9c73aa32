"""The Store protocol on both backends: exact round trips, last write wins, rollups combined,
listings, the series limit, retention and reopening."""

from __future__ import annotations

import pytest

from storage.embedded import EmbeddedStore
from storage.errors import StoreClosedError
from storage.records import Rollups, Samples, Series
from tests.backends import StoreOpener, checkpoint
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
