"""Power loss during a checkpoint: whatever state of its blocks, series log and manifest a cut
leaves, the store opens with exactly the records written (see test_power_loss.py)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.errors import CorruptStoreError
from storage.manifest import MANIFEST
from tests.storage.power_cuts import (
    LATER,
    MINUTE_NS,
    A,
    B,
    C,
    D,
    RawWrite,
    RollupWrite,
    Write,
    apply,
    assert_recovers,
    copy_for_case,
    intact_prefix,
    last_segment,
    open_store,
    power_cut,
    rollup,
    torn_wal_tail,
    whole_records,
)
from tests.strategies import torn_bytes

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


@pytest.mark.slow
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
