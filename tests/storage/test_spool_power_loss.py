"""Power loss and the spool: whatever a power cut leaves of its files, the spool opens with
every record whose append returned, in order, nothing else, and logs what it dropped.

As in test_power_loss.py the cut is simulated on real files: records are appended (fsync'd),
the spool dir is copied as a power cut would find it, and the copy is cut or torn.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipboard.settings import Settings
from storage.influx import InfluxConfig, InfluxStore
from storage.records import Samples, Series
from storage.spool import Spool
from tests.backends import Influxd
from tests.launcher import free_port
from tests.strategies import torn_bytes

MAX_BYTES = 1 << 20


def drain(spool: Spool) -> list[tuple[int, bytes]]:
    """Take every record oldest first, removing each as a delivered one is."""
    taken = []
    while (record := spool.oldest()) is not None:
        taken.append(record)
        spool.remove(record[0])
    return taken


def spool_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "storage.spool" and r.levelno >= logging.WARNING
    ]


def fill(directory: Path, payloads: Sequence[bytes]) -> tuple[list[int], list[Path]]:
    """Append `payloads`; their sequence numbers and record files."""
    spool = Spool(directory, MAX_BYTES)
    seqs = [spool.append(p) for p in payloads]
    return seqs, [directory / f"{seq:020d}.rec" for seq in seqs]


def test_an_append_cut_at_every_byte_leaves_exactly_the_records_appended_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The append in flight wrote its temporary file up to any byte, or all of it; the spool
    opens with the earlier records only, says it removed the rest, and appends after them."""
    payloads = [b"first write", b"second write", b"third write"]
    live = tmp_path / "live"
    seqs, _ = fill(live, payloads)
    image = tmp_path / "image"
    shutil.copytree(live, image)
    in_flight = Spool(live, MAX_BYTES).append(b"the write in flight")
    written = (live / f"{in_flight:020d}.rec").read_bytes()
    for cut in range(len(written) + 1):
        case = tmp_path / f"cut-{cut}"
        shutil.copytree(image, case)
        tmp = case / f"{in_flight:020d}.tmp"
        tmp.write_bytes(written[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, "storage"):
            spool = Spool(case, MAX_BYTES)
            assert spool_warnings(caplog) == [
                f"removing {tmp} ({cut} bytes): a spool append that did not finish, "
                "never acknowledged"
            ]
            assert (spool.depth, spool.size_bytes) == (3, sum(12 + len(p) for p in payloads))
            after = spool.append(b"after the cut")
            assert after > seqs[-1]
            assert drain(spool) == [*zip(seqs, payloads, strict=True), (after, b"after the cut")]
        assert (spool.depth, spool.size_bytes) == (0, 0)
        assert list(case.iterdir()) == []
        shutil.rmtree(case)


@pytest.mark.slow
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # caplog is cleared per example
)
@given(
    payloads=st.lists(st.binary(max_size=200), min_size=1, max_size=6),
    data=st.data(),
)
def test_a_torn_record_is_set_aside_and_logged_and_the_rest_drain_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
    payloads: list[bytes],
    data: st.DataObject,
) -> None:
    """A record file torn anywhere (which the rename protocol cannot leave, but a disk can)
    does not stop the spool: it is moved to `.damaged`, logged, and the others drain."""
    directory = tmp_path_factory.mktemp("spool")
    seqs, files = fill(directory, payloads)
    records = list(zip(seqs, payloads, strict=True))
    victim = data.draw(st.integers(0, len(files) - 1), label="torn record")
    whole = files[victim].read_bytes()
    left = data.draw(torn_bytes(whole), label="what is left of it")
    files[victim].write_bytes(left)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "storage"):
        spool = Spool(directory, MAX_BYTES)
        assert spool.depth == len(payloads)
        got = drain(spool)
        damaged = files[victim].with_suffix(".damaged")
        if left == whole:
            assert got == records
            assert spool_warnings(caplog) == []
        else:
            assert got == records[:victim] + records[victim + 1 :]
            assert spool_warnings(caplog) == [
                f"spool record {files[victim]} ({len(left)} bytes) is damaged and cannot be "
                f"delivered: moved to {damaged}"
            ]
            assert damaged.read_bytes() == left
        assert (spool.depth, spool.size_bytes) == (0, 0)
    reopened = Spool(directory, MAX_BYTES)
    assert reopened.oldest() is None  # the damaged file stays aside, out of the queue
    if left != whole:
        assert reopened.append(b"next") > seqs[victim]  # not written over the damaged one
        assert damaged.read_bytes() == left


HOST = Series.of("spooled", {"host": "a"})


def batch(first: int, size: int) -> Samples:
    ts = np.arange(first, first + size, dtype=np.int64)
    return Samples((HOST,), np.zeros(size, np.int32), ts, ts.astype(np.float64) * 0.25)


def test_the_influxdb_store_delivers_every_whole_spooled_write_after_a_power_cut(
    tmp_path: Path, influxd: Influxd, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes spooled while InfluxDB was away, then a power cut: one record torn on disk and an
    append cut short. The next start delivers every other write, once, and logs both; its
    drainer keeps going past the torn record."""
    database = influxd.new_database()
    tiers = Settings().tiers()
    away = InfluxConfig(f"http://127.0.0.1:{free_port()}", api="v1", database=database)
    store = InfluxStore(away, tiers, tmp_path / "spool", listing_ttl_s=0.0)
    try:
        for i in range(5):
            store.write(batch(100 * i, 10))  # InfluxDB is away: each is spooled, fsync'd
        assert store.spool_depth == 5
        shutil.copytree(tmp_path / "spool", tmp_path / "image")  # the power cut
    finally:
        store.close()
    records = sorted((tmp_path / "image").glob("*.rec"))
    torn = records[2]
    torn.write_bytes(torn.read_bytes()[:-7])
    torn_bytes_left = torn.stat().st_size
    half = tmp_path / "image" / "00000000000000000099.tmp"
    half.write_bytes(records[0].read_bytes()[:20])
    back = InfluxConfig(influxd.url, api="v1", database=database)
    with (
        caplog.at_level(logging.WARNING, "storage"),
        InfluxStore(back, tiers, tmp_path / "image", listing_ttl_s=0.0) as store,
    ):
        deadline = time.monotonic() + 30
        while store.spool_depth:
            assert time.monotonic() < deadline, "the spool did not drain"
            time.sleep(0.05)
        store.write(batch(1000, 3))
        got = store.read([HOST], 0, 2000)
    delivered = [b for i, b in enumerate([0, 100, 200, 300, 400]) if i != 2]
    want = [t for b in [*delivered, 1000] for t in range(b, b + (3 if b == 1000 else 10))]
    assert got.ts_ns.tolist() == want
    assert np.array_equal(got.values, np.array(want) * 0.25)
    answer = influxd.query('SELECT count("value") FROM "spooled"', database).decode()
    assert f"[0,{len(want)}]" in answer  # stored once each
    assert spool_warnings(caplog) == [
        f"removing {half} (20 bytes): a spool append that did not finish, never acknowledged",
        f"spool record {torn} ({torn_bytes_left} bytes) is damaged and cannot be delivered: "
        f"moved to {torn.with_suffix('.damaged')}",
    ]
