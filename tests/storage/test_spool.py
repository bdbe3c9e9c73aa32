"""The spool on its own, and the InfluxDB store riding out a stopped influxd: acknowledged points
arrive once, in order; a full spool refuses writes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from shipboard.settings import Settings
from storage.errors import ReadOnlyStoreError, SpoolFullError
from storage.influx import InfluxConfig, InfluxStore
from storage.records import Samples, Series
from storage.spool import Spool
from tests.backends import Influxd

HOST = Series.of("load", {"host": "a"})


def test_records_come_back_oldest_first_across_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    seqs = [spool.append(f"record {i}".encode()) for i in range(3)]
    (tmp_path / "00000000000000000099.tmp").write_bytes(b"half")  # an append cut short
    reopened = Spool(tmp_path, 1 << 20)
    assert reopened.depth == 3
    assert not (tmp_path / "00000000000000000099.tmp").exists()
    got = []
    while (record := reopened.oldest()) is not None:
        got.append(record)
        reopened.remove(record[0])
    assert got == [(seq, f"record {i}".encode()) for i, seq in enumerate(seqs)]
    assert (reopened.depth, reopened.size_bytes) == (0, 0)
    assert reopened.append(b"next") > seqs[-1]


def test_a_full_spool_refuses_until_records_are_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 100)
    first = spool.append(b"x" * 60)
    with pytest.raises(SpoolFullError, match="spool"):
        spool.append(b"y" * 60)
    spool.remove(first)
    spool.append(b"y" * 60)
    assert spool.depth == 1


def batch(start: int, size: int) -> Samples:
    ts = np.arange(start, start + size, dtype=np.int64)
    return Samples((HOST,), np.zeros(size, np.int32), ts, ts.astype(np.float64) * 0.5)


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_influxd_restarted_mid_ingest_gets_every_acknowledged_point_once(
    tmp_path: Path,
) -> None:
    (tmp_path / "influxd").mkdir()
    server = Influxd(tmp_path / "influxd")
    server.start()
    try:
        database = server.new_database()
        config = InfluxConfig(server.url, api="v1", database=database, timeout_s=1.0)
        with InfluxStore(
            config, Settings().tiers(), tmp_path / "spool", listing_ttl_s=0.0
        ) as store:  # its drainer delivers the spool once influxd is back
            acknowledged: list[int] = []
            stop = threading.Event()

            def ingest() -> None:
                start = 0
                while not stop.is_set():
                    store.write(batch(start, 50))
                    acknowledged.append(start)
                    start += 50
                    time.sleep(0.005)

            writer = threading.Thread(target=ingest)
            writer.start()
            wait_for(lambda: len(acknowledged) >= 20)
            server.stop()
            wait_for(lambda: store.spool_depth >= 20)  # acknowledged while influxd is down
            spooled = store.spool_depth
            server.start()
            wait_for(lambda: len(acknowledged) >= 60)
            stop.set()
            writer.join()
            wait_for(lambda: store.spool_depth == 0)
            points = len(acknowledged) * 50
            got = store.read([HOST], 0, points + 1000)
            assert spooled >= 20
            assert got.ts_ns.tolist() == list(range(points))
            assert np.array_equal(got.values, np.arange(points) * 0.5)
            answer = server.query('SELECT count("value") FROM "load"', database)
            assert f"[0,{points}]" in answer.decode()  # stored once each, not just read once
    finally:
        server.stop()


def test_a_reader_without_a_spool_reads_what_a_writer_stored_and_refuses_writes(
    tmp_path: Path, influxd: Influxd
) -> None:
    config = InfluxConfig(influxd.url, api="v1", database=influxd.new_database())
    writer = InfluxStore(config, Settings().tiers(), tmp_path / "spool", listing_ttl_s=0.0)
    reader = InfluxStore(config, Settings().tiers(), None, listing_ttl_s=0.0)
    try:
        writer.write(batch(0, 10))
        got = reader.read([HOST], 0, 1000)
        assert got.ts_ns.tolist() == list(range(10))
        assert reader.spool_depth == 0
        with pytest.raises(ReadOnlyStoreError):
            reader.write(batch(10, 1))
        with pytest.raises(ReadOnlyStoreError):
            reader.apply_retention(0)
    finally:
        reader.close()
        writer.close()
