"""Blocks: immutable on-disk runs of one tier, one `.npy` file per column, opened with memmap.

A block is a directory `blocks/<tier>/<number>` holding `sid.npy`, `ts.npy` and `c<i>.npy`,
sorted by (sid, ts) with one row per key. Pages come from the OS cache as queries touch them,
so old data costs no resident memory. A sketch table's block is compact instead
(`storage.sketch_blocks`: per-sketch arrays and narrow bucket rows, decoded as read). Blocks
are written, fsync'd, then listed in the manifest; a block directory the manifest does not
list was left by a checkpoint, compaction or retention pass that did not finish, and recovery
removes it (`remove_unlisted`).
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from storage import sketch_blocks
from storage.columns import SKETCH_WIDTH, Columns, IdArray, select_sorted
from storage.files import fsync_dir, mkdir_durable, write_synced

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """What the manifest says of a block: its name, size, time range and compaction level."""

    number: int
    rows: int
    min_ts: int
    max_ts: int
    level: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "number": self.number,
            "rows": self.rows,
            "min_ts": self.min_ts,
            "max_ts": self.max_ts,
            "level": self.level,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockInfo:
        return cls(
            int(data["number"]),
            int(data["rows"]),
            int(data["min_ts"]),
            int(data["max_ts"]),
            int(data["level"]),
        )


@dataclass(frozen=True, slots=True)
class Block:
    info: BlockInfo
    rows: Columns | sketch_blocks.SketchRun

    def select(self, sids: IdArray | None, start_ns: int, end_ns: int) -> Columns:
        """The rows of the sorted `sids` (None: any) in [start_ns, end_ns) (`select_sorted`)."""
        if isinstance(self.rows, sketch_blocks.SketchRun):
            return self.rows.select(sids, start_ns, end_ns)
        return select_sorted(self.rows, sids, start_ns, end_ns)

    def decoded(self) -> Columns:
        """Every row, for a merge (decoded whole from a compact block)."""
        if isinstance(self.rows, sketch_blocks.SketchRun):
            return self.rows.decoded()
        return self.rows

    def keys(self) -> Columns:
        """The (sid, ts) keys of the block, without columns (of each sketch, if compact)."""
        if isinstance(self.rows, sketch_blocks.SketchRun):
            return self.rows.keys()
        return Columns(self.rows.sid, self.rows.ts, ())

    def overlaps(self, start_ns: int, end_ns: int) -> bool:
        return self.info.max_ts >= start_ns and self.info.min_ts < end_ns


def block_dir(root: Path, tier: str, number: int) -> Path:
    return root / "blocks" / tier / f"{number:08d}"


def write_block(root: Path, tier: str, number: int, rows: Columns, level: int = 0) -> Block:
    """Write a sorted, de-duplicated, non-empty run as block `number`; durable on return."""
    directory = block_dir(root, tier, number)
    mkdir_durable(directory)
    arrays = sketch_blocks.encode(rows) if rows.width == SKETCH_WIDTH else None
    if arrays is None:
        arrays = {"sid": rows.sid, "ts": rows.ts}
        arrays |= {f"c{i}": c for i, c in enumerate(rows.cols)}
    for name, array in arrays.items():
        write_synced(
            directory / f"{name}.npy", functools.partial(np.save, arr=np.ascontiguousarray(array))
        )
    fsync_dir(directory)  # the block is listed in the manifest only after this
    info = BlockInfo(number, len(rows), int(rows.ts.min()), int(rows.ts.max()), level)
    return Block(info, load_rows(directory, rows.width))


def load_block(root: Path, tier: str, info: BlockInfo, width: int) -> Block:
    return Block(info, load_rows(block_dir(root, tier, info.number), width))


def load_rows(directory: Path, width: int) -> Columns | sketch_blocks.SketchRun:
    if width == SKETCH_WIDTH and sketch_blocks.is_compact(directory):
        return sketch_blocks.load(directory)

    def load(name: str) -> Any:
        # A plain array over the map: numpy's memmap wraps every slice and take in Python.
        return np.asarray(np.load(directory / f"{name}.npy", mmap_mode="r"))

    return Columns(load("sid"), load("ts"), tuple(load(f"c{i}") for i in range(width)))


def remove_block(root: Path, tier: str, number: int) -> None:
    """Delete a block no manifest lists any more (open memmaps keep working)."""
    shutil.rmtree(block_dir(root, tier, number), ignore_errors=True)


def block_numbers(root: Path, tier: str) -> list[int]:
    """Numbers of the block directories present for `tier`, listed or not."""
    directory = root / "blocks" / tier
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def remove_unlisted(root: Path, tier: str, listed: Iterable[BlockInfo]) -> list[int]:
    """Remove the block directories of `tier` that the manifest does not list, logging each;
    returns their numbers. Their rows are still in the WAL (an unfinished checkpoint), in the
    blocks they were merged from (compaction), or below the floor (retention)."""
    numbers = {b.number for b in listed}
    removed = [n for n in block_numbers(root, tier) if n not in numbers]
    for number in removed:
        directory = block_dir(root, tier, number)
        files = sorted(p for p in directory.iterdir() if p.is_file())
        _LOG.warning(
            "removing block %s (%d files, %d bytes): not in the manifest, left by a checkpoint, "
            "compaction or retention pass that did not finish",
            directory,
            len(files),
            sum(p.stat().st_size for p in files),
        )
        remove_block(root, tier, number)
    return removed
