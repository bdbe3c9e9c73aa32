"""The embedded writer's durable half: the data dir's lock, WAL replay, checkpoints and merges.

Open: take the data dir's lock, load the committed state (manifest, blocks, series log), replay
the WAL segments after it (cutting a torn tail of the last one) and start a new segment.
Checkpoint (a maintenance thread, by head size or age): rotate the WAL, swap in a fresh head,
write the old head as one block per tier, merge runs of four same-level blocks, append new
series to the series log, replace the manifest atomically, then delete the covered segments.
Segments rotate at checkpoints, so their size is bounded by `checkpoint_rows`. Retention drops
whole blocks behind each tier's floor the same way: a new manifest first, then the files.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Self

import numpy as np

from storage import blocks as block_files
from storage.base import retention_floors
from storage.blocks import Block
from storage.columns import ROLLUP_WIDTH, drop_before, merge
from storage.embedded_view import NO_FLOOR, SERIES_LOG, StoreView, tier_of
from storage.errors import CorruptStoreError, StoreLockedError
from storage.files import mkdir_durable
from storage.head import Head
from storage.manifest import recover_manifest, write_manifest
from storage.records import Tier
from storage.series_index import append_log, cyclic_gc_paused, discard_uncommitted
from storage.wal import WalWriter, cut_torn_tail, read_records, segment_path, segments

_LOG = logging.getLogger(__name__)

BLOCK_FAN_IN = 4
MAX_MERGE_ROWS = 4_000_000
"""Blocks are merged only up to this size, which bounds the memory a compaction needs."""


class DurableView(StoreView):
    """A `StoreView` that owns its data dir: recovered on open, checkpointed into blocks,
    merged and cut by retention (`EmbeddedStore` adds the writes)."""

    def __init__(
        self,
        path: Path,
        tiers: Sequence[Tier],
        *,
        checkpoint_rows: int,
        checkpoint_interval_s: float,
    ) -> None:
        super().__init__(path, tiers)
        self._checkpoint_rows = checkpoint_rows
        self._checkpoint_interval_s = checkpoint_interval_s
        self._head_since = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()  # the maintenance thread's: head parts to merge
        mkdir_durable(self._root / "wal")
        self._lock_fd = _lock_dir(self._root)
        try:
            self._wal = self._recover()
            if self._manifest.version < 2:
                self.checkpoint()  # upgrades the rollup tiers, once
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._thread: threading.Thread | None = None  # started by `with`, not by opening

    def __enter__(self) -> Self:
        """Start the maintenance thread, which merges head parts and checkpoints by size or
        age until `close()` (which `__exit__` calls)."""
        self._check_open()
        if self._thread is None:
            self._thread = threading.Thread(target=self._maintain, name="store-maintenance")
            self._thread.start()
        return self

    def _part_added(self) -> None:
        self._wake.set()

    def checkpoint(self) -> None:
        """Move the head into blocks and delete the WAL segments it came from."""
        self._check_open()
        upgrade = self._manifest.version < 2
        with self._maintenance_lock:
            with self._lock:
                if not self._wal.segment_bytes and not self._frozen and not upgrade:
                    return
                sealed = self._wal.rotate()
                self._frozen = (*self._frozen, self._heads)
                self._heads = self._new_heads()
                self._head_since = time.monotonic()
                frozen = self._frozen
                series_count = len(self._index)
                watermarks = dict(self._watermarks)
                claims = dict(self._claims)
                dirty = {t: dict(marks) for t, marks in self._dirty.items() if marks}
                write_seq = self._seq
                forgotten = tuple(sorted(self._index.forgotten))
            manifest = self._manifest
            blocks = dict(self._blocks)
            number = manifest.next_block
            obsolete: list[tuple[str, int]] = []
            for tier, width in self._widths.items():
                if upgrade and width == ROLLUP_WIDTH:
                    number = self._upgrade_rollups(tier, blocks, frozen, number, obsolete)
                    continue
                rows = merge([r for heads in frozen for r in heads[tier].runs()], width)
                rows = drop_before(rows, manifest.floors.get(tier_of(tier), NO_FLOOR))
                if len(rows):
                    blocks[tier] = (
                        *blocks[tier],
                        block_files.write_block(self._root, tier, number, rows),
                    )
                    number = self._compact(tier, blocks, number + 1, obsolete)
            new_keys = self._index.keys(manifest.series_count, series_count)
            series_bytes = manifest.series_bytes
            if new_keys:
                series_bytes = append_log(self._root / SERIES_LOG, series_bytes, new_keys)
            manifest = replace(
                manifest,
                wal_start=sealed + 1,
                series_count=series_count,
                series_bytes=series_bytes,
                next_block=number,
                blocks={t: tuple(b.info for b in bs) for t, bs in blocks.items()},
                watermarks=watermarks,
                write_seq=write_seq,
                claims=claims,
                dirty=dirty,
                forgotten=forgotten,
                version=2,
            )
            write_manifest(self._root, manifest)
            with self._lock:
                self._manifest = manifest
                self._blocks = blocks
                self._frozen = ()
            for segment in segments(self._root / "wal"):
                if segment <= sealed:
                    segment_path(self._root / "wal", segment).unlink()
            for tier, old in obsolete:
                block_files.remove_block(self._root, tier, old)

    def _upgrade_rollups(
        self,
        tier: str,
        blocks: dict[str, tuple[Block, ...]],
        frozen: tuple[dict[str, Head], ...],
        number: int,
        obsolete: list[tuple[str, int]],
    ) -> int:
        """Rewrite a rollup tier of a version-1 store, where a late point's bucket had partial
        rows that readers combined, with one row per bucket (they replace each other now).
        Series ranges of at most about `MAX_MERGE_ROWS` rows at a time bound the memory."""
        runs = [b.decoded() for b in blocks[tier]] + [
            r for heads in frozen for r in heads[tier].runs()
        ]
        total = sum(len(r) for r in runs)
        ranges = max(1, -(-total // MAX_MERGE_ROWS))
        edges = np.linspace(0, len(self._index) + 1, ranges + 1).astype(np.int64)
        upgraded: list[Block] = []
        floor = self._manifest.floors.get(tier, NO_FLOOR)
        for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
            part = [r.take((r.sid >= lo) & (r.sid < hi)) for r in runs]
            rows = drop_before(merge(part, ROLLUP_WIDTH, combine=True), floor)
            if len(rows):
                upgraded.append(block_files.write_block(self._root, tier, number, rows))
                number += 1
        obsolete += [(tier, b.info.number) for b in blocks[tier]]
        blocks[tier] = tuple(upgraded)
        _LOG.info(
            "upgraded the %s tier: %d rollup rows into %d",
            tier,
            total,
            sum(b.info.rows for b in upgraded),
        )
        return number

    def _compact(
        self,
        tier: str,
        blocks: dict[str, tuple[Block, ...]],
        number: int,
        obsolete: list[tuple[str, int]],
    ) -> int:
        """Merge the last `BLOCK_FAN_IN` blocks of `tier` while they share a level and stay
        small; returns the next free block number."""
        while len(blocks[tier]) >= BLOCK_FAN_IN:
            tail = blocks[tier][-BLOCK_FAN_IN:]
            level = tail[0].info.level
            if any(b.info.level != level for b in tail):
                break
            if sum(b.info.rows for b in tail) > MAX_MERGE_ROWS:
                break
            rows = merge([b.decoded() for b in tail], self._widths[tier])
            merged = block_files.write_block(self._root, tier, number, rows, level + 1)
            blocks[tier] = (*blocks[tier][:-BLOCK_FAN_IN], merged)
            obsolete += [(tier, b.info.number) for b in tail]
            number += 1
        return number

    def apply_retention(self, now_ns: int) -> None:
        self._check_open()
        with self._maintenance_lock:
            manifest = self._manifest
            manifest_floors = manifest.floors
            floors = dict(manifest_floors)
            blocks = dict(self._blocks)
            with self._lock:
                oldest_dirty = {t: min(m) for t, m in self._dirty.items() if m}
            dropped: list[tuple[str, int]] = []
            cuts = retention_floors(tuple(self._tiers.values()), now_ns, oldest_dirty)
            for name in self._tiers:
                floors[name] = max(floors.get(name, NO_FLOOR), cuts[name])
            for name in self._widths:
                floor = floors[tier_of(name)]
                dropped += [(name, b.info.number) for b in blocks[name] if b.info.max_ts < floor]
                blocks[name] = tuple(b for b in blocks[name] if b.info.max_ts >= floor)
            forgotten = self._forget_aged_out(blocks, floors)
            manifest = replace(
                manifest,
                floors=floors,
                blocks={t: tuple(b.info for b in bs) for t, bs in blocks.items()},
                forgotten=forgotten,
            )
            write_manifest(self._root, manifest)
            with self._lock:
                self._manifest = manifest
                self._blocks = blocks
                for name in self._tiers:
                    if floors[name] > manifest_floors.get(name, NO_FLOOR):
                        self._changes.note(name, NO_FLOOR, floors[name])
            for name, number in dropped:
                block_files.remove_block(self._root, name, number)

    def _maintain(self) -> None:
        """Merge head parts as they pile up and checkpoint by size or age, until close."""
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._merge_head_parts()
                with self._lock:
                    rows = sum(h.rows for h in self._heads.values())
                    age_s = time.monotonic() - self._head_since
                if rows >= self._checkpoint_rows or (rows and age_s >= self._checkpoint_interval_s):
                    self.checkpoint()
            except Exception:
                _LOG.exception("store maintenance failed; retrying in 5 s")
                self._stop.wait(5.0)

    def close(self) -> None:
        """Checkpoint, stop the maintenance thread and release the data dir."""
        if self._closed:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.checkpoint()
        finally:
            self._wal.close()
            os.close(self._lock_fd)
        self._closed = True

    def _recover(self) -> WalWriter:
        """Open the committed state, replay the WAL (cutting a torn tail), start a segment."""
        manifest = recover_manifest(self._root)
        self._blocks = self._load(manifest)
        self._manifest = manifest
        self._restore(manifest)
        if manifest.version < 2:
            self._heads = self._new_heads(combine=True)  # replayed as they were written
        for table in self._widths:
            block_files.remove_unlisted(self._root, table, manifest.blocks.get(table, ()))
        discard_uncommitted(self._root / SERIES_LOG, manifest.series_bytes)
        wal_dir = self._root / "wal"
        numbers = segments(wal_dir)
        for number in [n for n in numbers if n < manifest.wal_start]:
            segment_path(wal_dir, number).unlink()
        numbers = [n for n in numbers if n >= manifest.wal_start]
        for number in numbers:
            path = segment_path(wal_dir, number)
            end = 0
            with cyclic_gc_paused():  # the records may define a million series
                for record, record_end in read_records(path):
                    self._apply(record)
                    end = record_end
            if end != path.stat().st_size:
                if number != numbers[-1]:
                    raise CorruptStoreError(f"{path} is damaged at byte {end}")
                cut_torn_tail(path, end)
        return WalWriter(wal_dir, numbers[-1] + 1 if numbers else manifest.wal_start)


def _lock_dir(root: Path) -> int:
    """Take the data dir's write lock (released by the OS if the process dies)."""
    fd = os.open(root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLockedError(f"another process writes to {root}") from None
    return fd
