"""The tag index after a crash: rebuilt from the series log and the WAL, it finds every series
acknowledged before the crash and nothing that was not committed."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest

from storage.embedded import EmbeddedStore
from storage.records import Samples, Series
from storage.series_index import append_log
from tests.storage import test_crash
from tests.storage.conftest import StoreFactory
from tests.storage.power_cuts import open_store, power_cut, storage_warnings

PER_BATCH = 50
RACKS = 4


def fleet_batch(i: int) -> list[Series]:
    """Write `i`'s series, every one new: a host of its own, a rack shared with others."""
    return [
        Series.of("fleet", {"host": f"h{i}-{j}", "rack": f"r{j % RACKS}"}) for j in range(PER_BATCH)
    ]


def write_batch(store: EmbeddedStore, i: int) -> None:
    series = fleet_batch(i)
    index = np.arange(len(series), dtype=np.int32)
    store.write(Samples(series, index, np.full(len(series), i + 1), np.full(len(series), i + 0.5)))


def assert_index_is_right(store: EmbeddedStore, batches: list[int]) -> None:
    """Every series of `batches` is found by its own tags, and each pair the store has finds
    what filtering all of the metric's series finds."""
    everything = store.series("fleet")
    assert set(everything) == {s for i in batches for s in fleet_batch(i)}
    for series in everything:
        assert store.series_with("fleet", series.tags) == [series]
    for key in store.tag_keys("fleet"):
        for value in store.tag_values("fleet", key):
            wanted = [s for s in everything if s.tag(key) == value]
            assert store.series_with("fleet", [(key, value)]) == wanted
    assert store.tag_values("fleet", "rack") == [f"r{r}" for r in range(RACKS)]


def test_the_index_is_right_after_a_power_cut_and_again_after_writes(tmp_path: Path):
    root, image = tmp_path / "data", tmp_path / "cut"
    store = open_store(root)
    try:
        for i in range(3):
            write_batch(store, i)
        store.checkpoint()  # batches 0-2 in the series log, 3-5 in the WAL only
        for i in range(3, 6):
            write_batch(store, i)
        power_cut(root, image)
    finally:
        store.close()
    store = open_store(image)
    try:
        assert_index_is_right(store, list(range(6)))
        write_batch(store, 6)
        assert_index_is_right(store, list(range(7)))
    finally:
        store.close()


def test_series_a_checkpoint_appended_but_did_not_commit_are_not_in_the_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    root, image = tmp_path / "data", tmp_path / "cut"
    store = open_store(root)
    try:
        write_batch(store, 0)
        store.checkpoint()
        power_cut(root, image)
    finally:
        store.close()
    log = image / "series.log"
    append_log(log, log.stat().st_size, fleet_batch(99))  # then the power went
    with caplog.at_level(logging.WARNING, "storage"):
        store = open_store(image)
    assert [w for w in storage_warnings(caplog) if w.startswith("discarding")], caplog.text
    try:
        assert_index_is_right(store, [0])
        assert store.series_with("fleet", [("host", "h99-0")]) == []
    finally:
        store.close()


CRASH_WRITER = textwrap.dedent(
    f"""
    import sys
    from pathlib import Path
    from shipboard.settings import Settings
    from storage.embedded import EmbeddedStore
    from tests.storage.test_tag_index_crash import write_batch

    store = EmbeddedStore(Path(sys.argv[1]), Settings().tiers(), checkpoint_rows={PER_BATCH * 8})
    store.__enter__()  # its maintenance thread checkpoints by size; the kill ends it all
    for i in range(100_000):
        write_batch(store, i)
        print("ack", i, flush=True)
    """
)


@pytest.mark.slow
def test_the_index_is_rebuilt_right_after_kill_9(
    tmp_path: Path, open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
):
    data = tmp_path / "data"
    monkeypatch.setattr(test_crash, "WRITER", CRASH_WRITER)  # its runner, this writer
    acked = test_crash.run_and_kill(data, 120)
    assert (data / "series.log").stat().st_size  # some series were checkpointed
    assert list(data.glob("wal/*.wal"))  # and the last ones are in the WAL only
    store = open_store(data)
    # Every acknowledged batch, and perhaps one more that was durable but not acknowledged.
    batches = sorted({int(str(s.tag("host"))[1:].split("-")[0]) for s in store.series("fleet")})
    assert batches[: len(acked)] == sorted(acked)
    assert len(batches) <= len(acked) + 1
    assert_index_is_right(store, batches)
