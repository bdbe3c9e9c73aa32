"""The embedded store's own behaviour: group commit, the data-dir lock, read-only followers.

What every backend must do is tested in test_store_protocol.py, on this store and on InfluxDB.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from storage.embedded import EmbeddedStore
from storage.errors import StoreClosedError, StoreLockedError
from storage.records import NS_PER_S, Rollups, Samples, Series, Tier
from tests.storage.conftest import ReaderFactory, StoreFactory

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


def test_opening_starts_no_thread_entering_starts_the_maintenance_thread_and_close_ends_it(
    tmp_path: Path, tiers: tuple[Tier, ...]
) -> None:
    before = set(threading.enumerate())
    store = EmbeddedStore(tmp_path / "data", tiers)
    assert set(threading.enumerate()) == before
    with store as entered:
        assert entered is store
        assert [t.name for t in set(threading.enumerate()) - before] == ["store-maintenance"]
    assert set(threading.enumerate()) == before
    store.close()  # a second close does nothing
    with pytest.raises(StoreClosedError):
        store.__enter__()


def test_a_second_writer_is_locked_out(open_store: StoreFactory) -> None:
    open_store()
    with pytest.raises(StoreLockedError):
        open_store()


def test_a_reader_follows_the_writer_at_each_refresh(
    open_store: StoreFactory, open_reader: ReaderFactory
) -> None:
    writer = open_store(checkpoint_rows=1000)
    reader = open_reader()
    assert reader.read(None, 0, 10).points() == []
    writer.write(Samples.from_points([(A, 1, 1.0)]))
    assert reader.read([A], 0, 10).points() == []  # not before it refreshes
    reader.refresh()
    assert reader.read([A], 0, 10).points() == [(A, 1, 1.0)]
    writer.checkpoint()
    writer.write(Samples.from_points([(A, 1, 5.0), (B, 2, 2.0)]))
    writer.write_rollups("1m", rollups([(B, 0, 1, 1, 1, 1, 1)]), watermark_ns=60)
    reader.refresh()
    assert reader.read(None, 0, 10).points() == [(A, 1, 5.0), (B, 2, 2.0)]
    assert reader.series() == [A, B]
    assert reader.watermark("1m") == 60
    for step in range(20):  # several checkpoints and block merges behind the reader's back
        writer.write(Samples.from_points([(C, 10 + i, float(step)) for i in range(300)]))
        if step % 3 == 0:
            writer.checkpoint()
        reader.refresh()
        assert reader.read([C], 0, 1000).values.tolist() == [float(step)] * 300
    assert not hasattr(reader, "write")  # a reader has no write path at all


def test_a_reader_may_open_before_the_writer(
    open_store: StoreFactory, open_reader: ReaderFactory
) -> None:
    reader = open_reader()
    assert reader.metrics() == []
    writer = open_store()
    writer.write(Samples.from_points([(A, 1, 1.0)]))
    reader.refresh()
    assert reader.read(None, 0, 10).points() == [(A, 1, 1.0)]


@pytest.mark.parametrize("series", [None, (A, B)], ids=["every series", "given series"])
def test_a_read_answers_in_arrays_of_its_own(
    open_store: StoreFactory, series: tuple[Series, ...] | None
) -> None:
    """Reads hand back no block's or head's own arrays, even of a block wholly in range: a
    caller changing its answer changes nothing stored."""
    store = open_store()
    ts = np.arange(0, 600, 10, dtype=np.int64) * NS_PER_S
    index = np.repeat(np.arange(2, dtype=np.int32), 60)
    store.write(Samples((A, B), index, np.tile(ts, 2), np.arange(120, dtype=np.float64)))
    minute = [(s, m * 60 * NS_PER_S, 1.0, 2.0, 3.0, 4.0, 5.0) for s in (A, B) for m in range(10)]
    store.write_rollups("1m", rollups(minute), watermark_ns=600 * NS_PER_S)
    for _ in range(2):  # in the head, then in blocks
        raw, rows = store.read(series, 0, HOUR_NS), store.read_rollups("1m", series, 0, HOUR_NS)
        answer: list[np.ndarray] = [raw.index, raw.ts_ns, raw.values, rows.bucket_ns, rows.sum]
        expected = [a.tolist() for a in answer]
        for array in (*answer, rows.index):
            array[:] = 0
        raw, rows = store.read(series, 0, HOUR_NS), store.read_rollups("1m", series, 0, HOUR_NS)
        again: list[np.ndarray] = [raw.index, raw.ts_ns, raw.values, rows.bucket_ns, rows.sum]
        assert [a.tolist() for a in again] == expected
        assert (len(raw), len(rows)) == (120, 20)
        store.checkpoint()
