"""Durability: every write acknowledged before a `kill -9` is there after reopening."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from storage.records import Samples, Series
from storage.wal import segment_path, segments
from tests.storage.conftest import StoreFactory

BATCH = 2000
HOSTS = 7

# Writes batch i (ts i*BATCH .. +BATCH, value i) from four threads and prints "ack i" once
# write() returned; checkpoints now and then, so the kill can land in any phase.
WRITER = textwrap.dedent(
    f"""
    import sys, threading
    import numpy as np
    from pathlib import Path
    from shipboard.settings import Settings
    from storage.embedded import EmbeddedStore
    from storage.records import Samples, Series

    store = EmbeddedStore(Path(sys.argv[1]), Settings().tiers(), checkpoint_rows=50_000)
    store.__enter__()  # its maintenance thread checkpoints by size; the kill ends it all
    series = tuple(Series.of("crash", {{"host": str(h)}}) for h in range({HOSTS}))
    lock = threading.Lock()
    counter = iter(range(10**9))

    def run():
        while True:
            with lock:
                i = next(counter)
            index = (np.arange({BATCH}) % {HOSTS}).astype(np.int32)
            ts = np.arange({BATCH}, dtype=np.int64) + i * {BATCH}
            store.write(Samples(series, index, ts, np.full({BATCH}, float(i))))
            with lock:
                print("ack", i, flush=True)

    for _ in range(4):
        threading.Thread(target=run, daemon=True).start()
    threading.Event().wait()
    """
)


def run_and_kill(data: Path, acks_wanted: int) -> list[int]:
    acked: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    ) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                acked.append(int(line.split()[1]))
                if len(acked) >= acks_wanted:
                    break
            os.kill(child.pid, signal.SIGKILL)
            # Printed before death; the kill may cut the last line short, an ack never seen whole.
            acked += [int(line.split()[1]) for line in child.stdout if line.endswith("\n")]
        finally:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    return acked


def assert_all_acknowledged(store, acked: list[int]) -> None:
    series = [Series.of("crash", {"host": str(h)}) for h in range(HOSTS)]
    got = store.read(series, 0, (max(acked) + 50) * BATCH)
    present = set((got.ts_ns // BATCH).tolist())
    assert set(acked) <= present
    # every point of an acknowledged batch, with its exact value
    batch_of = got.ts_ns // BATCH
    acked_rows = np.isin(batch_of, acked)
    assert int(acked_rows.sum()) == BATCH * len(acked)
    assert np.array_equal(got.values[acked_rows], batch_of[acked_rows].astype(np.float64))


@pytest.mark.slow
def test_acknowledged_writes_survive_kill_9(tmp_path: Path, open_store: StoreFactory) -> None:
    data = tmp_path / "data"
    acked = run_and_kill(data, 150)
    assert len(acked) >= 150
    store = open_store(data)
    assert_all_acknowledged(store, acked)


@pytest.mark.slow
def test_a_torn_tail_is_discarded_and_the_store_keeps_working(
    tmp_path: Path, open_store: StoreFactory
) -> None:
    data = tmp_path / "data"
    acked = run_and_kill(data, 40)
    last = segments(data / "wal")[-1]
    with segment_path(data / "wal", last).open("ab") as f:
        f.write(b"SBW1\xff\xff\x00\x00half a record")  # a frame whose payload never landed
    store = open_store(data)
    assert_all_acknowledged(store, acked)
    assert not segment_path(data / "wal", last).read_bytes().endswith(b"half a record")
    late = Series.of("crash", {"host": "late"})
    store.write(Samples.from_points([(late, 1, 1.0)]))
    store.close()
    store = open_store(data)
    assert store.read([late], 0, 10).points() == [(late, 1, 1.0)]
    assert_all_acknowledged(store, acked)
