"""The embedded store: Shipboard's default metric storage, in the data dir, numpy + stdlib only.

Data dir layout:

    LOCK                  flock'd by the one writing process
    MANIFEST.json         committed blocks, series count, watermarks, retention floors
    series.log            series definitions, one JSON line per id (committed prefix)
    wal/<n>.wal           write-ahead log segments written since the last checkpoint
    blocks/<tier>/<n>/    immutable column files sorted by (series id, ts), memmapped

Write: under one lock a batch gets its series ids (new series beyond `max_series` refused,
points older than the raw tier's retention floor too), is framed as one WAL record of raw
columns and appended to the in-memory head, and the buckets it touches behind each rollup
tier's bound are marked dirty; then the caller waits outside the lock for group commit
(`WalWriter`), so concurrent writers share one fsync. Dirty marks are a function of the WAL's
order (raw records number them; rollup records raise bounds and clear marks), so replay and a
read-only follower rebuild exactly the writer's marks; checkpoints keep them in the manifest.
Checkpoint (a maintenance thread, by head size or age): rotate the WAL, swap in a fresh head,
write the old head as one block per tier, merge runs of four same-level blocks, append new
series to the series log, replace the manifest atomically, then delete the covered segments.
Segments rotate at checkpoints, so their size is bounded by `checkpoint_rows`.
Reads are the shared `StoreView`'s; a read-only follower in another process is an
`EmbeddedReader`.
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

import numpy as np

from storage import blocks as block_files
from storage.base import DirtyBuckets, WriteResult, retention_floors
from storage.blocks import Block
from storage.columns import ROLLUP_WIDTH, Columns, add_into, drop_before, merge, summarise
from storage.embedded_view import NO_FLOOR, SERIES_LOG, StoreView
from storage.errors import CorruptStoreError, StoreLockedError
from storage.files import mkdir_durable
from storage.head import Head
from storage.manifest import recover_manifest, write_manifest
from storage.records import RAW, FloatArray, IndexArray, IntArray, Rollups, Samples, Series, Tier
from storage.series_index import append_log, discard_uncommitted
from storage.wal import (
    Cleared,
    Record,
    WalWriter,
    cut_torn_tail,
    encode,
    read_records,
    segment_path,
    segments,
)

_LOG = logging.getLogger(__name__)

BLOCK_FAN_IN = 4
MAX_MERGE_ROWS = 4_000_000
"""Blocks are merged only up to this size, which bounds the memory a compaction needs."""


class EmbeddedStore(StoreView):
    """A `storage.base.Store` in one directory: the one writing process (`EmbeddedReader`s
    follow it from others)."""

    def __init__(
        self,
        path: Path,
        tiers: Sequence[Tier],
        *,
        max_series: int = 1_000_000,
        checkpoint_rows: int = 8_000_000,
        checkpoint_interval_s: float = 900.0,
    ) -> None:
        super().__init__(path, tiers)
        self._max_series = max_series
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
        self._thread = threading.Thread(target=self._maintain, name="store-maintenance")
        self._thread.start()

    def _part_added(self) -> None:
        self._wake.set()

    def write(self, samples: Samples) -> WriteResult:
        self._check_open()
        if not len(samples):
            return WriteResult(0)
        with self._lock:
            rows, new_series, refused_series = self._rows(
                samples.series, samples.index, samples.ts_ns, (samples.values,)
            )
            refused = len(samples) - len(rows)
            old = rows.ts < self._manifest.floors.get(RAW, NO_FLOOR)
            backfill: list[Record] = []
            too_old = 0
            if old.any():
                backfill, too_old = self._backfill(rows.take(old))
                rows = rows.take(~old)
            if not len(rows) and not backfill and not new_series:
                return WriteResult(0, refused, refused_series, too_old)
            # The raw record first, even empty: it defines the batch's new series.
            ticket = self._wal.submit(encode(Record(RAW, rows, new_series)))
            self._append_raw(rows)
            for record in backfill:
                ticket = self._wal.submit(encode(record))
                self._apply_rollup(record)
        self._wal.wait(ticket)
        return WriteResult(len(samples) - refused - too_old, refused, refused_series, too_old)

    def _backfill(self, rows: Columns) -> tuple[list[Record], int]:
        """Records for raw rows older than the raw tier keeps: each goes to the finest rollup
        tier that still keeps its time, added to that tier's row of its bucket (coarser tiers
        roll the bucket up again from there); and how many rows are older than every tier."""
        records = []
        for tier in sorted((t for t in self._tiers.values() if not t.is_raw), key=_width):
            here = rows.ts >= self._manifest.floors.get(tier.name, NO_FLOOR)
            if not here.any():
                continue
            new = summarise(rows.take(here), tier.width_ns)
            rows = rows.take(~here)
            lo, hi = int(new.ts.min()), int(new.ts.max()) + 1
            stored = self._stored(tier.name, np.unique(new.sid), lo, hi)
            span = (hi - lo) // tier.width_ns + 1
            keys = new.sid.astype(np.int64) * span + (new.ts - lo) // tier.width_ns
            stored_keys = stored.sid.astype(np.int64) * span + (stored.ts - lo) // tier.width_ns
            stored = stored.take(np.isin(stored_keys, keys))
            records.append(Record(tier.name, add_into(stored, new)))
        return records, len(rows)

    def write_rollups(
        self,
        tier: str,
        rollups: Rollups,
        watermark_ns: int,
        rerolled: DirtyBuckets | None = None,
    ) -> None:
        self._check_open()
        self._check_rollup_tier(tier)
        with self._lock:
            rows, new_series, _ = self._rows(
                rollups.series,
                rollups.index,
                rollups.bucket_ns,
                (rollups.min, rollups.max, rollups.sum, rollups.count, rollups.last),
            )
            cleared = None
            if rerolled is not None and len(rerolled):
                cleared = Cleared(rerolled.seq, tuple(rerolled.bucket_ns.tolist()))
            record = Record(tier, rows, new_series, watermark_ns, cleared=cleared)
            ticket = self._wal.submit(encode(record))
            self._apply_rollup(record)
        self._wal.wait(ticket)

    def begin_rollup(self, tier: str, end_ns: int) -> None:
        self._check_open()
        self._check_rollup_tier(tier)
        with self._lock:
            if end_ns <= self._bound(tier):
                return
            # No wait: any later record that is fsync'd makes this one durable too.
            record = Record(tier, Columns.empty(ROLLUP_WIDTH), claim_ns=end_ns)
            self._wal.submit(encode(record))
            self._apply_rollup(record)

    def _rows(
        self,
        series: Sequence[Series],
        index: IndexArray,
        ts_ns: IntArray,
        cols: tuple[FloatArray, ...],
    ) -> tuple[Columns, tuple[tuple[int, Series], ...], int]:
        """A batch as store rows, with the series it defines now and how many series were
        refused (their rows left out). Called under `_lock`."""
        ids, new_series, refused_series = self._resolve(series, index)
        sid = ids[index]
        rows = Columns(
            sid.astype(np.uint32),
            np.array(ts_ns, np.int64),
            tuple(np.array(c, np.float64) for c in cols),
        )
        return (rows.take(sid >= 0) if refused_series else rows), new_series, refused_series

    def _resolve(
        self,
        series: Sequence[Series],
        index: IndexArray,
    ) -> tuple[IntArray, tuple[tuple[int, Series], ...], int]:
        """Ids of `series` (-1: refused), the series defined now, how many were refused.
        A forgotten series written again counts against the limit like a new one."""
        ids = self._index.lookup(series)
        unknown = np.flatnonzero(ids < 0)
        stale = self._index.forgotten_among(ids)
        if not len(unknown) and not len(stale):
            return ids, (), 0
        used = np.zeros(len(series), np.bool_)
        used[index] = True
        new: list[tuple[int, Series]] = []
        refused = 0
        for sid in stale.tolist():
            positions = np.flatnonzero(ids == sid)
            if not used[positions].any():
                continue
            if self._index.live >= self._max_series:
                ids[positions] = -1
                refused += 1
            else:
                self._index.revive(sid)
        for i in unknown.tolist():
            if not used[i]:
                continue
            known = self._index.get(series[i])  # the same series twice in one batch
            if known is not None:
                ids[i] = known
            elif self._index.live >= self._max_series:
                refused += 1
            else:
                ids[i] = self._index.add(series[i])
                new.append((int(ids[i]), series[i]))
        return ids, tuple(new), refused

    @property
    def fsyncs(self) -> int:
        """WAL fsyncs so far: fewer than writes when group commit shares them."""
        return self._wal.fsyncs

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
                if upgrade and tier != RAW:
                    number = self._upgrade_rollups(tier, blocks, frozen, number, obsolete)
                    continue
                rows = merge([r for heads in frozen for r in heads[tier].runs()], width)
                rows = drop_before(rows, manifest.floors.get(tier, NO_FLOOR))
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
        runs = [b.rows for b in blocks[tier]] + [r for heads in frozen for r in heads[tier].runs()]
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
            rows = merge([b.rows for b in tail], self._widths[tier])
            merged = block_files.write_block(self._root, tier, number, rows, level + 1)
            blocks[tier] = (*blocks[tier][:-BLOCK_FAN_IN], merged)
            obsolete += [(tier, b.info.number) for b in tail]
            number += 1
        return number

    def apply_retention(self, now_ns: int) -> None:
        self._check_open()
        with self._maintenance_lock:
            manifest = self._manifest
            floors = dict(manifest.floors)
            blocks = dict(self._blocks)
            with self._lock:
                oldest_dirty = {t: min(m) for t, m in self._dirty.items() if m}
            dropped: list[tuple[str, int]] = []
            cuts = retention_floors(tuple(self._tiers.values()), now_ns, oldest_dirty)
            for name in self._tiers:
                floor = max(floors.get(name, NO_FLOOR), cuts[name])
                floors[name] = floor
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
        for tier in self._tiers:
            block_files.remove_unlisted(self._root, tier, manifest.blocks.get(tier, ()))
        discard_uncommitted(self._root / SERIES_LOG, manifest.series_bytes)
        wal_dir = self._root / "wal"
        numbers = segments(wal_dir)
        for number in [n for n in numbers if n < manifest.wal_start]:
            segment_path(wal_dir, number).unlink()
        numbers = [n for n in numbers if n >= manifest.wal_start]
        for number in numbers:
            path = segment_path(wal_dir, number)
            end = 0
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


def _width(tier: Tier) -> int:
    return tier.width_ns
