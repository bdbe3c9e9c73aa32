"""The embedded store: exact round trips, last write wins, rollups, listings, limits, retention."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from storage.errors import ReadOnlyStoreError, StoreClosedError, StoreLockedError
from storage.records import NS_PER_S, Rollups, Samples, Series
from tests.storage.conftest import StoreFactory

A = Series.of("cpu.user", {"host": "a"})
B = Series.of("cpu.user", {"host": "b"})
C = Series.of("mem.used", {"host": "a"})
HOUR_NS = 3600 * NS_PER_S


def rollups(rows: list[tuple[Series, int, float, float, float, float, float]]) -> Rollups:
    series = tuple(dict.fromkeys(r[0] for r in rows))
    columns = list(zip(*(r[1:] for r in rows), strict=True))
    return Rollups(
        series,
        np.asarray([series.index(r[0]) for r in rows], np.int32),
        np.asarray(columns[0], np.int64),
        *(np.asarray(c, np.float64) for c in columns[1:]),
    )


def test_points_read_back_sorted_by_series_and_time(open_store: StoreFactory) -> None:
    store = open_store()
    result = store.write(Samples.from_points([(A, 30, 3.0), (B, 10, 1.5), (A, 10, 1.0)]))
    assert result.accepted == 3
    assert store.read([B, A], 0, 100).points() == [(B, 10, 1.5), (A, 10, 1.0), (A, 30, 3.0)]
    assert store.read(None, 0, 100).points() == [(A, 10, 1.0), (A, 30, 3.0), (B, 10, 1.5)]


def test_last_write_wins_for_the_same_series_and_timestamp(open_store: StoreFactory) -> None:
    store = open_store()
    store.write(Samples.from_points([(A, 10, 1.0), (A, 10, 2.0)]))
    store.checkpoint()
    store.write(Samples.from_points([(A, 10, 3.0), (A, 5, 0.5)]))
    assert store.read([A], 0, 100).points() == [(A, 5, 0.5), (A, 10, 3.0)]
    store.checkpoint()
    store.write(Samples.from_points([(A, 10, 4.0)]))
    assert store.read([A], 0, 100).points() == [(A, 5, 0.5), (A, 10, 4.0)]


def test_range_is_half_open_and_unknown_series_are_empty(open_store: StoreFactory) -> None:
    store = open_store()
    store.write(Samples.from_points([(A, t, float(t)) for t in range(0, 100, 10)]))
    got = store.read([Series("nope"), A], 20, 50)
    assert got.points() == [(A, 20, 20.0), (A, 30, 30.0), (A, 40, 40.0)]
    assert got.series == (Series("nope"), A)
    assert store.read([A], 50, 50).points() == []


def test_reopen_after_close_keeps_points_series_and_watermarks(open_store: StoreFactory) -> None:
    store = open_store()
    store.write(Samples.from_points([(A, 1, 1.0), (C, 2, 2.0)]))
    store.write_rollups("1m", rollups([(A, 0, 1, 1, 1, 1, 1)]), watermark_ns=60)
    store.close()
    store = open_store()
    store.write(Samples.from_points([(B, 3, 3.0)]))
    store.close()
    store = open_store()
    assert store.read(None, 0, 10).points() == [(A, 1, 1.0), (B, 3, 3.0), (C, 2, 2.0)]
    assert store.watermark("1m") == 60
    assert store.watermark("1h") is None
    assert store.read_rollups("1m", [A], 0, 60).sum.tolist() == [1.0]
    assert store.series_count() == 3


def test_rollup_rows_of_one_bucket_combine(open_store: StoreFactory) -> None:
    store = open_store()
    store.write_rollups("1m", rollups([(A, 60, 1.0, 5.0, 6.0, 2.0, 5.0)]), watermark_ns=120)
    store.checkpoint()
    store.write_rollups(
        "1m",
        rollups([(A, 60, 0.5, 3.0, 3.5, 2.0, 0.5), (B, 0, 2.0, 2.0, 2.0, 1.0, 2.0)]),
        watermark_ns=180,
    )
    store.write_rollups("1m", rollups([(A, 60, 4.0, 9.0, 13.0, 2.0, 9.0)]), watermark_ns=240)
    got = store.read_rollups("1m", [A, B], 0, 600)
    assert got.index.tolist() == [0, 1]
    assert got.bucket_ns.tolist() == [60, 0]
    assert got.min.tolist() == [0.5, 2.0]
    assert got.max.tolist() == [9.0, 2.0]
    assert got.sum.tolist() == [22.5, 2.0]
    assert got.count.tolist() == [6.0, 1.0]
    assert got.last.tolist() == [9.0, 2.0]
    assert store.watermark("1m") == 240
    assert len(store.read_rollups("10m", None, 0, 600)) == 0


def test_rollups_of_the_raw_tier_are_refused(open_store: StoreFactory) -> None:
    store = open_store()
    with pytest.raises(ValueError, match="rollup tier"):
        store.write_rollups("raw", Rollups.empty(), 0)


def test_metrics_and_series_listings_use_globs_and_sort(open_store: StoreFactory) -> None:
    store = open_store()
    store.write(Samples.from_points([(C, 1, 1.0), (B, 1, 1.0), (A, 1, 1.0)]))
    assert store.metrics() == ["cpu.user", "mem.used"]
    assert store.metrics("cpu.*") == ["cpu.user"]
    assert store.metrics("*.used") == ["mem.used"]
    assert store.metrics("disk*") == []
    assert store.series("cpu.user") == [A, B]
    assert store.series() == [A, B, C]
    store.write(Samples.from_points([(Series("cpu.idle"), 2, 0.0)]))
    assert store.metrics("cpu.*") == ["cpu.idle", "cpu.user"]


def test_new_series_beyond_max_series_are_refused_and_counted(open_store: StoreFactory) -> None:
    store = open_store(max_series=2)
    assert store.write(Samples.from_points([(A, 1, 1.0), (B, 1, 1.0)])).accepted == 2
    result = store.write(Samples.from_points([(C, 2, 1.0), (A, 2, 2.0), (C, 3, 1.0)]))
    assert (result.accepted, result.refused_points, result.refused_series) == (1, 2, 1)
    assert store.read(None, 0, 10).points() == [(A, 1, 1.0), (A, 2, 2.0), (B, 1, 1.0)]
    assert store.series_count() == 2


def test_retention_drops_old_points_per_tier(open_store: StoreFactory, tiers) -> None:
    store = open_store()
    raw_retention = tiers[0].retention_ns
    now = 10 * raw_retention
    old, new = now - raw_retention - HOUR_NS, now - HOUR_NS
    store.write(Samples.from_points([(A, old, 1.0)]))
    store.write_rollups("1h", rollups([(A, old, 1, 1, 1, 1, 1)]), watermark_ns=old)
    store.checkpoint()
    store.write(Samples.from_points([(A, new, 2.0), (B, old, 3.0)]))
    store.apply_retention(now)
    assert store.read(None, 0, now).points() == [(A, new, 2.0)]
    assert store.read_rollups("1h", [A], 0, now).bucket_ns.tolist() == [old]  # 730 d kept
    store.checkpoint()
    store.close()
    store = open_store()
    assert store.read(None, 0, now).points() == [(A, new, 2.0)]
    assert list((store._root / "blocks" / "raw").iterdir()) != []


def test_concurrent_writers_share_fsyncs_and_lose_nothing(open_store: StoreFactory) -> None:
    store = open_store()
    threads, batches, size = 8, 40, 500

    def writer(t: int) -> None:
        series = Series.of("load", {"thread": str(t)})
        for b in range(batches):
            ts = np.arange(size, dtype=np.int64) + b * size
            store.write(Samples((series,), np.zeros(size, np.int32), ts, np.full(size, float(b))))

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    got = store.read(None, 0, batches * size)
    assert len(got) == threads * batches * size
    assert np.array_equal(got.values[: batches * size], np.repeat(np.arange(batches), size))
    assert store.fsyncs < threads * batches


def test_a_second_writer_is_locked_out(open_store: StoreFactory) -> None:
    open_store()
    with pytest.raises(StoreLockedError):
        open_store()


def test_read_only_instance_follows_the_writer(open_store: StoreFactory) -> None:
    writer = open_store(checkpoint_rows=1000)
    reader = open_store(readonly=True)
    assert reader.read(None, 0, 10).points() == []
    writer.write(Samples.from_points([(A, 1, 1.0)]))
    assert reader.read([A], 0, 10).points() == [(A, 1, 1.0)]
    writer.checkpoint()
    writer.write(Samples.from_points([(A, 1, 5.0), (B, 2, 2.0)]))
    writer.write_rollups("1m", rollups([(B, 0, 1, 1, 1, 1, 1)]), watermark_ns=60)
    assert reader.read(None, 0, 10).points() == [(A, 1, 5.0), (B, 2, 2.0)]
    assert reader.series() == [A, B]
    assert reader.watermark("1m") == 60
    for step in range(20):  # several checkpoints and block merges behind the reader's back
        writer.write(Samples.from_points([(C, 10 + i, float(step)) for i in range(300)]))
        if step % 3 == 0:
            writer.checkpoint()
        assert reader.read([C], 0, 1000).values.tolist() == [float(step)] * 300
    with pytest.raises(ReadOnlyStoreError):
        reader.write(Samples.from_points([(A, 1, 1.0)]))


def test_read_only_instance_may_open_before_the_writer(open_store: StoreFactory) -> None:
    reader = open_store(readonly=True)
    assert reader.metrics() == []
    writer = open_store()
    writer.write(Samples.from_points([(A, 1, 1.0)]))
    assert reader.read(None, 0, 10).points() == [(A, 1, 1.0)]


def test_use_after_close_raises(open_store: StoreFactory) -> None:
    store = open_store()
    store.close()
    with pytest.raises(StoreClosedError):
        store.write(Samples.from_points([(A, 1, 1.0)]))
    with pytest.raises(StoreClosedError):
        store.read(None, 0, 10)
