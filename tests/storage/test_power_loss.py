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

import logging
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.embedded import EmbeddedStore
from storage.errors import CorruptStoreError
from storage.manifest import MANIFEST
from storage.records import NS_PER_S, RAW, Rollups, Samples, Series, Tier
from storage.wal import segment_path, segments
from tests.strategies import torn_bytes

MINUTE_NS = 60 * NS_PER_S
TIERS = (Tier(RAW, 0, 10**6 * MINUTE_NS), Tier("1m", MINUTE_NS, 10**6 * MINUTE_NS))
EVERYTHING = (0, 2**62)
A, B, C, D, E = (Series.of("power", {"host": h}) for h in "abcde")

RollupRow = tuple[Series, int, float, float, float, float, float]


@dataclass(frozen=True)
class RawWrite:
    points: tuple[tuple[Series, int, float], ...]


@dataclass(frozen=True)
class RollupWrite:
    rows: tuple[RollupRow, ...]
    watermark_ns: int


Write = RawWrite | RollupWrite


LATER = 1000 * MINUTE_NS
"""Raw points come after every rollup watermark: none is a late point for a rollup tier."""


def rollup(series: Series, minute: int, value: float) -> RollupRow:
    return (series, minute * MINUTE_NS, value, value + 1, 2 * value + 1, 2.0, value + 1)


# The WAL case: checkpointed, then fsync'd into the WAL, then in flight when the power went.
CHECKPOINTED: tuple[Write, ...] = (RawWrite(((A, LATER + 1, 1.0), (B, LATER + 2, 2.0))),)
FSYNCED: tuple[Write, ...] = (
    RawWrite(((A, LATER + 3, 3.0), (C, LATER + 4, 4.0))),
    RollupWrite((rollup(C, 1, 4.0),), 2 * MINUTE_NS),
)
IN_FLIGHT: tuple[Write, ...] = (
    RawWrite(((D, LATER + 5, 5.0), (D, LATER + 6, 6.5))),  # defines a new series
    RollupWrite((rollup(B, 2, 2.0),), 3 * MINUTE_NS),
    RawWrite(((A, LATER + 7, 7.0),)),
)
AFTER_RECOVERY = RawWrite(((B, LATER + 100, 100.0), (E, LATER + 101, 101.0)))


@dataclass(frozen=True)
class Contents:
    """What a store answers: raw points, 1m rollups, series and the 1m watermark."""

    points: list[tuple[Series, int, float]]
    rollups: list[RollupRow]
    series: set[Series]
    watermark_ns: int | None


def by_key(
    row: tuple[Series, int, float] | RollupRow,
) -> tuple[str, tuple[tuple[str, str], ...], int]:
    return (row[0].metric, row[0].tags, row[1])


def expected(writes: Sequence[Write]) -> Contents:
    points = [p for w in writes if isinstance(w, RawWrite) for p in w.points]
    rows = [r for w in writes if isinstance(w, RollupWrite) for r in w.rows]
    marks = [w.watermark_ns for w in writes if isinstance(w, RollupWrite)]
    return Contents(
        sorted(points, key=by_key),
        sorted(rows, key=by_key),
        {p[0] for p in points} | {r[0] for r in rows},
        marks[-1] if marks else None,
    )


def contents(store: EmbeddedStore) -> Contents:
    raw = store.read(None, *EVERYTHING)
    got = store.read_rollups("1m", None, *EVERYTHING)
    rows = [
        (got.series[i], b, mn, mx, s, n, last)
        for i, b, mn, mx, s, n, last in zip(
            got.index.tolist(),
            got.bucket_ns.tolist(),
            got.min.tolist(),
            got.max.tolist(),
            got.sum.tolist(),
            got.count.tolist(),
            got.last.tolist(),
            strict=True,
        )
    ]
    return Contents(
        sorted(raw.points(), key=by_key),
        sorted(rows, key=by_key),
        set(store.series()),
        store.watermark("1m"),
    )


def open_store(root: Path) -> EmbeddedStore:
    """A store that checkpoints only when told to (and on close)."""
    return EmbeddedStore(root, TIERS, checkpoint_rows=10**9, checkpoint_interval_s=1e9)


def apply(store: EmbeddedStore, write: Write) -> None:
    if isinstance(write, RawWrite):
        store.write(Samples.from_points(write.points))
        return
    series = tuple(dict.fromkeys(r[0] for r in write.rows))
    index = np.array([series.index(r[0]) for r in write.rows], np.int32)
    buckets = np.array([r[1] for r in write.rows], np.int64)
    cols = [np.array([r[i] for r in write.rows], np.float64) for i in range(2, 7)]
    store.write_rollups("1m", Rollups(series, index, buckets, *cols), write.watermark_ns)


def power_cut(root: Path, image: Path) -> None:
    """The data dir as a power cut finds it while the store runs: what was written so far."""
    shutil.copytree(root, image, copy_function=shutil.copyfile)


def copy_for_case(image: Path, case: Path) -> None:
    """A fresh copy of `image` at `case` (left over from a failed example, the old one goes)."""
    for stale in (case, case.with_name(case.name + "-again")):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.copytree(image, case, copy_function=shutil.copyfile)


def last_segment(root: Path) -> Path:
    return segment_path(root / "wal", segments(root / "wal")[-1])


def storage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the storage layer logged at WARNING or above."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("storage") and r.levelno >= logging.WARNING
    ]


def intact_prefix(written: bytes, left: bytes) -> int:
    """How many leading bytes of `written` are unchanged in `left`."""
    for i, (a, b) in enumerate(zip(written, left, strict=False)):
        if a != b:
            return i
    return min(len(written), len(left))


def whole_records(ends: Sequence[int], intact: int) -> int:
    """How many of the records ending at `ends` (bytes from their start) lie in the first
    `intact` bytes."""
    return sum(1 for end in ends if end <= intact)


def torn_wal_tail(path: Path, dropped: int, at: int) -> str:
    return f"discarding a torn WAL tail: {dropped} bytes of {path} from byte {at} "


def assert_recovers(
    root: Path,
    want: Sequence[Write],
    logged: Sequence[str],
    caplog: pytest.LogCaptureFixture,
    *,
    check: Callable[[], None] = lambda: None,
    again: bool = True,
) -> None:
    """Open `root`: exactly `want` comes back, each of `logged` starts one warning and nothing
    else warns, `check` holds; then, if `again`, a write, another power cut, and that write
    comes back too. Removes the data dirs afterwards."""
    caplog.clear()
    second = root.with_name(root.name + "-again")
    with caplog.at_level(logging.WARNING, "storage"):
        store = open_store(root)
        try:
            assert contents(store) == expected(want)
            got = storage_warnings(caplog)
            assert len(got) == len(logged), got
            for prefix in logged:
                assert len([g for g in got if g.startswith(prefix)]) == 1, (prefix, got)
            check()
            caplog.clear()
            if again:
                apply(store, AFTER_RECOVERY)
                power_cut(root, second)
        finally:
            store.close()
        shutil.rmtree(root)
        if again:
            with open_store(second) as reopened:
                assert contents(reopened) == expected([*want, AFTER_RECOVERY])
            shutil.rmtree(second)
        assert storage_warnings(caplog) == []


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the cut copies go: tmpfs when there is one. The cuts are simulated on copies, so
    the disk's own fsyncs (hundreds of cases, each opening and checkpointing a store) would add
    nothing but time."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path_factory.mktemp("cuts")
        return
    directory = Path(tempfile.mkdtemp(prefix="power-loss-", dir=shm))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


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


# -- a checkpoint cut short: blocks, series log, manifest --------------------------------------


BLOCKED = tuple(
    (
        RawWrite(((A, LATER + 10 + i, float(i)), (B, LATER + 10 + i, -float(i)))),
        RollupWrite((rollup(A, 10 + i, float(i)),), (11 + i) * MINUTE_NS),
    )
    for i in range(3)
)
BEFORE_CHECKPOINT: tuple[
    Write, ...
] = (  # C is a new series: the checkpoint appends it to series.log
    RawWrite(((A, LATER + 20, 20.0), (C, LATER + 21, 21.0))),
    RollupWrite((rollup(C, 20, 20.0), rollup(B, 20, 2.0)), 21 * MINUTE_NS),
)
DURING_CHECKPOINT: tuple[Write, ...] = (
    RawWrite(((D, LATER + 30, 30.0), (A, LATER + 31, 31.0))),
    RollupWrite((rollup(D, 30, 30.0),), 31 * MINUTE_NS),
    RawWrite(((C, LATER + 32, 32.0),)),
)
ALL_WRITES = (*(w for pair in BLOCKED for w in pair), *BEFORE_CHECKPOINT, *DURING_CHECKPOINT)


@dataclass(frozen=True)
class CheckpointImages:
    """The data dir just before a checkpoint and after it (plus writes made during it)."""

    before: Path
    after: Path
    segment: Path  # the segment the checkpoint started, relative to the data dir
    ends: tuple[int, ...]  # where each write made during the checkpoint ends in it
    new_blocks: tuple[Path, ...]  # block dirs the checkpoint wrote (a compaction among them)
    old_blocks: tuple[Path, ...]  # block dirs it made obsolete
    old_segments: tuple[Path, ...]  # segments it made obsolete


def files_under(root: Path, pattern: str) -> set[Path]:
    return {p.relative_to(root) for p in root.glob(pattern)}


@pytest.fixture(scope="module")
def checkpoint_images(tmp_path_factory: pytest.TempPathFactory) -> CheckpointImages:
    live = tmp_path_factory.mktemp("live") / "data"
    before = tmp_path_factory.mktemp("before") / "data"
    after = tmp_path_factory.mktemp("after") / "data"
    with open_store(live) as store:
        for pair in BLOCKED:
            for write in pair:
                apply(store, write)
            store.checkpoint()  # a block per tier each time; the fourth time compacts them
        for write in BEFORE_CHECKPOINT:
            apply(store, write)
        power_cut(live, before)
        store.checkpoint()
        segment = last_segment(live)
        ends = []
        for write in DURING_CHECKPOINT:
            apply(store, write)
            ends.append(segment.stat().st_size)
        power_cut(live, after)
    blocks_before = files_under(before, "blocks/*/*")
    blocks_after = files_under(after, "blocks/*/*")
    images = CheckpointImages(
        before,
        after,
        segment.relative_to(live),
        tuple(ends),
        tuple(sorted(blocks_after - blocks_before)),
        tuple(sorted(blocks_before - blocks_after)),
        tuple(sorted(files_under(before, "wal/*") - files_under(after, "wal/*"))),
    )
    assert len(images.new_blocks) == 2  # a merged block per tier
    assert len(images.old_blocks) == 6
    assert (after / "series.log").stat().st_size > (before / "series.log").stat().st_size
    return images


def removing_block(root: Path, block: Path) -> str:
    files = [p for p in (root / block).iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    return f"removing block {root / block} ({len(files)} files, {size} bytes): not in the manifest"


def lay_out_cut_checkpoint(
    images: CheckpointImages,
    case: Path,
    segment: bytes,
    blocks: dict[Path, dict[str, bytes]],
    series_tail: bytes,
    manifest_tmp: bytes | None,
) -> tuple[list[Write], list[str]]:
    """The data dir as a power cut during the checkpoint leaves it: the dir before, the new
    segment holding `segment`, the block dirs `blocks` (name -> bytes of each file present),
    `series_tail` after the committed series log and maybe a manifest replacement half-written.
    Returns the writes that must come back and the warnings that must be logged."""
    copy_for_case(images.before, case)
    (case / images.segment).write_bytes(segment)
    logged = []
    for block, files in blocks.items():
        (case / block).mkdir(parents=True)
        for name, content in files.items():
            (case / block / name).write_bytes(content)
        logged.append(removing_block(case, block))
    log = case / "series.log"
    committed = log.stat().st_size
    with log.open("ab") as f:
        f.write(series_tail)
    if series_tail:
        logged.append(f"discarding {len(series_tail)} bytes of {log} after the {committed} ")
    if manifest_tmp is not None:
        tmp = case / (MANIFEST + ".tmp")
        tmp.write_bytes(manifest_tmp)
        logged.append(f"removing {tmp} ({len(manifest_tmp)} bytes): a manifest replacement")
    written = (images.after / images.segment).read_bytes()
    kept = whole_records(images.ends, intact_prefix(written, segment))
    end = images.ends[kept - 1] if kept else 0
    if len(segment) > end:
        logged.append(torn_wal_tail(case / images.segment, len(segment) - end, end))
    want = [*(w for pair in BLOCKED for w in pair), *BEFORE_CHECKPOINT, *DURING_CHECKPOINT[:kept]]
    return want, logged


def new_series_bytes(images: CheckpointImages) -> bytes:
    committed = (images.before / "series.log").stat().st_size
    return (images.after / "series.log").read_bytes()[committed:]


def test_a_checkpoint_cut_short_leaves_the_store_as_before_it_and_logs_its_leftovers(
    checkpoint_images: CheckpointImages, scratch: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every file the checkpoint writes is there but cut in half: blocks, series, manifest."""
    images = checkpoint_images
    half = {
        block: {
            p.name: p.read_bytes()[: p.stat().st_size // 2]
            for p in (images.after / block).iterdir()
        }
        for block in images.new_blocks
    }
    series = new_series_bytes(images)
    manifest = (images.after / MANIFEST).read_bytes()
    case = scratch / "halves"
    want, logged = lay_out_cut_checkpoint(
        images,
        case,
        (images.after / images.segment).read_bytes(),
        half,
        series[: len(series) // 2],
        manifest[: len(manifest) // 2],
    )
    assert len(logged) == 4  # two blocks, the series log, the manifest; the WAL is whole

    def leftovers_gone() -> None:
        assert not (case / (MANIFEST + ".tmp")).exists()
        assert not any((case / block).exists() for block in images.new_blocks)
        committed = (images.before / "series.log").read_bytes()
        assert (case / "series.log").read_bytes() == committed

    assert_recovers(case, want, logged, caplog, check=leftovers_gone)


@st.composite
def cut_checkpoints(
    draw: st.DrawFn, images: CheckpointImages
) -> tuple[bytes, dict[Path, dict[str, bytes]], bytes, bytes | None]:
    """Any state of the files a checkpoint writes, each absent, whole, cut or torn."""
    segment = draw(torn_bytes((images.after / images.segment).read_bytes()), label="segment")
    blocks = {}
    for block in images.new_blocks:
        if draw(st.booleans(), label=f"{block} exists"):
            blocks[block] = {
                p.name: draw(torn_bytes(p.read_bytes()), label=str(block / p.name))
                for p in sorted((images.after / block).iterdir())
                if draw(st.booleans(), label=f"{block / p.name} exists")
            }
    series = draw(torn_bytes(new_series_bytes(images)), label="series.log tail")
    manifest = draw(
        st.none() | torn_bytes((images.after / MANIFEST).read_bytes()), label=MANIFEST + ".tmp"
    )
    return segment, blocks, series, manifest


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # caplog is cleared per example
)
@given(st.data())
def test_any_state_of_a_checkpoints_files_recovers_exactly_the_written_records(
    checkpoint_images: CheckpointImages,
    scratch: Path,
    caplog: pytest.LogCaptureFixture,
    data: st.DataObject,
) -> None:
    segment, blocks, series, manifest = data.draw(cut_checkpoints(checkpoint_images))
    case = scratch / "checkpoint"
    want, logged = lay_out_cut_checkpoint(
        checkpoint_images, case, segment, blocks, series, manifest
    )
    assert_recovers(case, want, logged, caplog)


def test_a_checkpoint_committed_but_not_cleaned_up_removes_what_it_made_obsolete(
    checkpoint_images: CheckpointImages, scratch: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The new manifest is in place, but the blocks it merged and the segments it covers are
    still there: they are removed (the blocks logged), nothing counted twice."""
    images = checkpoint_images
    case = scratch / "committed"
    shutil.copytree(images.after, case)
    for block in images.old_blocks:
        shutil.copytree(images.before / block, case / block)
    for segment in images.old_segments:
        shutil.copy(images.before / segment, case / segment)
    logged = [removing_block(case, block) for block in images.old_blocks]

    def obsolete_gone() -> None:
        assert not any((case / s).exists() for s in images.old_segments + images.old_blocks)

    assert_recovers(case, ALL_WRITES, logged, caplog, check=obsolete_gone)


def test_damage_before_the_last_segment_refuses_to_open_and_destroys_nothing(
    checkpoint_images: CheckpointImages, tmp_path: Path
) -> None:
    """An earlier segment was fsync'd whole before the next began: damage there is not a torn
    tail, and cutting it would drop acknowledged writes. The store says where and stops."""
    images = checkpoint_images
    case = tmp_path / "data"
    shutil.copytree(images.before, case)
    shutil.copy(images.after / images.segment, case / images.segment)
    earlier = last_segment(images.before).relative_to(images.before)
    damaged = bytearray((case / earlier).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (case / earlier).write_bytes(damaged)
    with pytest.raises(CorruptStoreError, match=re.escape(f"{case / earlier} is damaged at byte ")):
        open_store(case)
    assert (case / earlier).read_bytes() == damaged
    assert (case / images.segment).read_bytes() == (images.after / images.segment).read_bytes()


def test_a_first_manifest_cut_at_every_byte_opens_an_empty_store(
    scratch: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The very first open writes the manifest; a power cut can leave it half-written."""
    with open_store(scratch / "fresh"):
        pass
    manifest = (scratch / "fresh" / MANIFEST).read_bytes()
    for cut in [*range(0, len(manifest), 5), len(manifest)]:
        case = scratch / f"first-{cut}"
        case.mkdir()
        tmp = case / (MANIFEST + ".tmp")
        tmp.write_bytes(manifest[:cut])
        logged = [f"removing {tmp} ({cut} bytes): a manifest replacement that did not finish"]
        assert_recovers(case, [], logged, caplog, again=cut % 25 == 0)
