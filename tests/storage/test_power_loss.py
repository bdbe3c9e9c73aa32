"""Power loss: whatever a power cut leaves of the store's files, the store opens with every
record that was fsync'd (and whole records written after it), nothing that was never written,
and a log line naming what it dropped.

The cut is simulated on real files, no mocks: a store writes (each write fsync'd) and its data
dir is copied while it runs, as a power cut would find the disk; then, in the copy, the bytes
written after the last fsync are cut or torn as a power cut can leave them, and a store opened
on the copy recovers. A checkpoint cut short is laid out the same way: the data dir as it was
before the checkpoint, with each file the checkpoint writes absent, cut or torn.
"""

from __future__ import annotations

import re
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.errors import CorruptStoreError
from tests.storage.power_cuts import (
    CHECKPOINTED,
    FSYNCED,
    IN_FLIGHT,
    apply,
    assert_recovers,
    copy_for_case,
    intact_prefix,
    last_segment,
    open_store,
    power_cut,
    torn_wal_tail,
    whole_records,
)
from tests.strategies import torn_bytes

# -- the WAL's tail -------------------------------------------------------------------------


@dataclass(frozen=True)
class WalImage:
    """A data dir as a power cut left it, the last segment holding the writes in flight."""

    root: Path
    segment: Path  # the last segment, relative to the data dir
    fsynced_bytes: int  # its bytes fsync'd before the writes in flight began
    in_flight: bytes  # the bytes of the writes in flight, as written
    ends: tuple[int, ...]  # where each write in flight ends, from the start of `in_flight`


@pytest.fixture(scope="module")
def wal_image(tmp_path_factory: pytest.TempPathFactory) -> WalImage:
    live = tmp_path_factory.mktemp("live") / "data"
    image = tmp_path_factory.mktemp("image") / "data"
    with open_store(live) as store:
        for write in CHECKPOINTED:
            apply(store, write)
        store.checkpoint()
        for write in FSYNCED:
            apply(store, write)
        segment = last_segment(live)
        fsynced = segment.stat().st_size
        ends = []
        for write in IN_FLIGHT:
            apply(store, write)
            ends.append(segment.stat().st_size - fsynced)
        power_cut(live, image)
    relative = segment.relative_to(live)
    written = (image / relative).read_bytes()
    assert fsynced > 0
    assert ends[-1] == len(written) - fsynced
    return WalImage(image, relative, fsynced, written[fsynced:], tuple(ends))


def recover_wal(
    image: WalImage, left: bytes, case: Path, caplog: pytest.LogCaptureFixture, *, again: bool
) -> None:
    """Recover a copy of `image` whose in-flight bytes are `left`: the records fsync'd and the
    whole in-flight ones before the first damaged byte come back, and the segment is cut
    after them."""
    copy_for_case(image.root, case)
    segment = case / image.segment
    with segment.open("r+b") as f:
        f.truncate(image.fsynced_bytes)
        f.seek(image.fsynced_bytes)
        f.write(left)
    kept = whole_records(image.ends, intact_prefix(image.in_flight, left))
    end = image.fsynced_bytes + (image.ends[kept - 1] if kept else 0)
    dropped = image.fsynced_bytes + len(left) - end
    logged = [torn_wal_tail(segment, dropped, end)] if dropped else []
    want = [*CHECKPOINTED, *FSYNCED, *IN_FLIGHT[:kept]]

    def cut_after_the_whole_records() -> None:
        assert segment.stat().st_size == end

    assert_recovers(case, want, logged, caplog, check=cut_after_the_whole_records, again=again)


@pytest.mark.slow
@pytest.mark.parametrize("rest", ["cut", "zeros"])
def test_a_wal_tail_cut_at_every_byte_keeps_the_fsyncd_records_and_the_whole_ones_after(
    wal_image: WalImage, scratch: Path, caplog: pytest.LogCaptureFixture, rest: str
) -> None:
    """The in-flight bytes end at every offset; past it the file ends ("cut") or holds the
    zeros of blocks allocated but never written ("zeros")."""
    size = len(wal_image.in_flight)
    for cut in range(size + 1):
        left = wal_image.in_flight[:cut] + (bytes(size - cut) if rest == "zeros" else b"")
        recover_wal(wal_image, left, scratch / f"{rest}-{cut}", caplog, again=False)


@pytest.mark.slow
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # caplog is cleared per example
)
@given(st.data())
def test_a_wal_tail_torn_with_random_bytes_keeps_the_fsyncd_records_and_invents_nothing(
    wal_image: WalImage, scratch: Path, caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    left = data.draw(torn_bytes(wal_image.in_flight), label="in-flight bytes left")
    recover_wal(wal_image, left, scratch / "torn", caplog, again=True)


def test_a_last_record_that_checks_but_does_not_decode_refuses_to_open_and_is_kept(
    wal_image: WalImage, scratch: Path
) -> None:
    """A record whose CRC checks landed whole: it is no torn tail, and cutting it could drop an
    acknowledged write (say, from a newer version). The store names it and stops."""
    case = scratch / "undecodable"
    copy_for_case(wal_image.root, case)
    payload = struct.pack("<BxxxIIq", 0, 1000, 0, 0) + bytes(8)  # 1000 rows, one timestamp
    frame = struct.pack("<4sII", b"SBW1", len(payload), zlib.crc32(payload)) + payload
    segment = case / wal_image.segment
    with segment.open("r+b") as f:
        f.truncate(wal_image.fsynced_bytes)
        f.seek(wal_image.fsynced_bytes)
        f.write(frame)
    message = f"{segment}: the record at byte {wal_image.fsynced_bytes} checks but cannot be"
    with pytest.raises(CorruptStoreError, match=re.escape(message)):
        open_store(case)
    assert segment.stat().st_size == wal_image.fsynced_bytes + len(frame)
    shutil.rmtree(case)
