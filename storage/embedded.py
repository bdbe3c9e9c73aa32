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
Read: blocks overlapping the range (binary search per series), head parts, and the short
unsorted tail, stable-sorted into (index, ts) with the last write winning (rollups combined).
A read-only instance (another process) reloads the manifest when it changes and tails the WAL
from where it stopped on every read, ignoring a record still being written.
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
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from storage import blocks as block_files
from storage.base import DirtyBuckets, WriteResult, retention_floors
from storage.blocks import Block
from storage.columns import (
    RAW_WIDTH,
    ROLLUP_WIDTH,
    Columns,
    concat,
    drop_before,
    merge,
    select_sorted,
    select_unsorted,
)
from storage.errors import (
    CorruptStoreError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreLockedError,
)
from storage.head import Head, Snapshot
from storage.manifest import MANIFEST, Manifest, read_manifest, recover_manifest, write_manifest
from storage.records import RAW, FloatArray, IndexArray, IntArray, Rollups, Samples, Series, Tier
from storage.series_index import (
    SeriesIndex,
    append_log,
    discard_uncommitted,
    read_log,
    sort_key,
)
from storage.wal import (
    Cleared,
    Record,
    WalWriter,
    cut_torn_tail,
    encode,
    mkdir_durable,
    read_records,
    segment_path,
    segments,
)

_LOG = logging.getLogger(__name__)

BLOCK_FAN_IN = 4
MAX_MERGE_ROWS = 4_000_000
"""Blocks are merged only up to this size, which bounds the memory a compaction needs."""

_SERIES_LOG = "series.log"
_NO_FLOOR = -(2**63)
_Stamp = tuple[int, int, int]


class EmbeddedStore:
    """A `storage.base.Store` in one directory; one writing process, any number of readers."""

    def __init__(
        self,
        path: Path,
        tiers: Sequence[Tier],
        *,
        max_series: int = 1_000_000,
        readonly: bool = False,
        checkpoint_rows: int = 8_000_000,
        checkpoint_interval_s: float = 900.0,
    ) -> None:
        self._root = Path(path)
        self._tiers = {t.name: t for t in tiers}
        if RAW not in self._tiers:
            raise ValueError("the tiers must include the raw tier")
        self._widths = {t: RAW_WIDTH if t == RAW else ROLLUP_WIDTH for t in self._tiers}
        self._max_series = max_series
        self._readonly = readonly
        self._checkpoint_rows = checkpoint_rows
        self._checkpoint_interval_s = checkpoint_interval_s
        self._closed = False
        self._lock = threading.Lock()  # orders writes; guards the heads and swapped views
        self._maintenance_lock = threading.Lock()  # one checkpoint, merge or retention at once
        self._index = SeriesIndex()
        self._manifest = Manifest()
        self._blocks: dict[str, tuple[Block, ...]] = {t: () for t in self._tiers}
        self._heads = self._new_heads()
        self._frozen: tuple[dict[str, Head], ...] = ()  # heads being written as blocks
        self._watermarks: dict[str, int] = {}
        self._claims: dict[str, int] = {}
        self._dirty: dict[str, dict[int, int]] = {t: {} for t in self._tiers if t != RAW}
        self._seq = 0  # raw write records so far; numbers the dirty marks
        self._head_since = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()  # the maintenance thread's: head parts to merge
        if readonly:
            self._refresh_lock = threading.Lock()
            self._stamp: _Stamp | None = None
            self._segment = 0
            self._offset = 0
            self._refresh()
            return
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

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------

    def write(self, samples: Samples) -> WriteResult:
        self._check_writable()
        if not len(samples):
            return WriteResult(0)
        with self._lock:
            kept = samples.ts_ns >= self._manifest.floors.get(RAW, _NO_FLOOR)
            too_old = len(samples) - int(np.count_nonzero(kept))
            if too_old:
                samples = samples.take(kept)
            rows, new_series, refused_series = self._rows(
                samples.series, samples.index, samples.ts_ns, (samples.values,)
            )
            if not len(rows):
                return WriteResult(0, len(samples), refused_series, too_old)
            ticket = self._wal.submit(encode(Record(RAW, rows, new_series)))
            self._append_raw(rows)
        self._wal.wait(ticket)
        return WriteResult(len(rows), len(samples) - len(rows), refused_series, too_old)

    def write_rollups(
        self,
        tier: str,
        rollups: Rollups,
        watermark_ns: int,
        rerolled: DirtyBuckets | None = None,
    ) -> None:
        self._check_writable()
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
        self._check_writable()
        self._check_rollup_tier(tier)
        with self._lock:
            if end_ns <= self._bound(tier):
                return
            # No wait: any later record that is fsync'd makes this one durable too.
            record = Record(tier, Columns.empty(ROLLUP_WIDTH), claim_ns=end_ns)
            self._wal.submit(encode(record))
            self._apply_rollup(record)

    def dirty(self, tier: str) -> DirtyBuckets:
        self._check_open()
        self._check_rollup_tier(tier)
        self._refresh()
        with self._lock:
            buckets = np.fromiter(sorted(self._dirty[tier]), np.int64, len(self._dirty[tier]))
            return DirtyBuckets(buckets, self._seq)

    def _bound(self, tier: str) -> int:
        """Raw points before this make their bucket of `tier` dirty."""
        return max(self._watermarks.get(tier, _NO_FLOOR), self._claims.get(tier, _NO_FLOOR))

    def _append_raw(self, rows: Columns) -> None:
        """Append a raw record's rows and mark the buckets they make dirty; under `_lock`."""
        self._seq += 1
        if self._heads[RAW].append(rows):
            self._wake.set()
        if not len(rows):
            return
        oldest = int(rows.ts.min())
        for tier, marks in self._dirty.items():
            bound = self._bound(tier)
            if oldest >= bound:
                continue
            width = self._tiers[tier].width_ns
            late = rows.ts[rows.ts < bound]
            for bucket in np.unique(late - late % width).tolist():
                marks[bucket] = self._seq

    def _apply_rollup(self, record: Record) -> None:
        """Apply a rollup tier's record: rows, watermark, pass bound, cleared marks."""
        tier = record.tier
        if self._heads[tier].append(record.rows):
            self._wake.set()
        if record.watermark_ns is not None:
            self._watermarks[tier] = record.watermark_ns
        if record.claim_ns is not None:
            self._claims[tier] = record.claim_ns
        if record.cleared is not None:
            marks, seq = self._dirty[tier], record.cleared.seq
            for bucket in record.cleared.bucket_ns:
                if marks.get(bucket, seq + 1) <= seq:
                    del marks[bucket]

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

    def _check_rollup_tier(self, tier: str) -> None:
        if tier == RAW or tier not in self._tiers:
            raise ValueError(f"not a rollup tier: {tier!r}")

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
        return 0 if self._readonly else self._wal.fsyncs

    def watermark(self, tier: str) -> int | None:
        self._check_open()
        self._refresh()
        return self._watermarks.get(tier)

    # -- reads ----------------------------------------------------------------------------

    def read(self, series: Sequence[Series] | None, start_ns: int, end_ns: int) -> Samples:
        keys, rows = self._select(RAW, series, start_ns, end_ns)
        return Samples(keys, rows.sid.astype(np.int32), np.array(rows.ts), np.array(rows.cols[0]))

    def read_rollups(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Rollups:
        self._check_rollup_tier(tier)
        keys, rows = self._select(tier, series, start_ns, end_ns)
        mins, maxs, sums, counts, lasts = (np.array(c) for c in rows.cols)
        return Rollups(
            keys, rows.sid.astype(np.int32), np.array(rows.ts), mins, maxs, sums, counts, lasts
        )

    def _select(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> tuple[tuple[Series, ...], Columns]:
        """Rows of `tier` in range, their sid replaced by the position in the returned keys."""
        self._check_open()
        self._refresh()
        width = self._widths[tier]
        with self._lock:
            start_ns = max(start_ns, self._manifest.floors.get(tier, _NO_FLOOR))
            blocks = [b for b in self._blocks[tier] if b.overlaps(start_ns, end_ns)]
            heads: list[Snapshot] = [h[tier].snapshot() for h in self._frozen]
            heads.append(self._heads[tier].snapshot())
            known = len(self._index)
        keys: tuple[Series, ...] = () if series is None else tuple(series)
        if end_ns <= start_ns:
            return keys, Columns.empty(width)
        sids = member = None
        if series is not None:
            ids = self._index.lookup(keys)
            wanted = ids >= 0
            sids = np.unique(ids[wanted]).astype(np.uint32)
            size = max(known, int(sids[-1]) + 1 if len(sids) else 0) + 1
            member = np.zeros(size, np.bool_)
            member[sids] = True
        pieces = [select_sorted(b.rows, sids, start_ns, end_ns) for b in blocks]
        for head in heads:
            pieces += [select_sorted(p, sids, start_ns, end_ns) for p in head.parts]
            pieces += [select_unsorted(c, member, start_ns, end_ns) for c in head.chunks]
        rows = concat(pieces, width)
        if series is None:
            present_sids = np.unique(rows.sid)
            present = [self._index.key(s) for s in present_sids.tolist()]
            order = sorted(range(len(present)), key=lambda i: sort_key(present[i]))
            rank = np.empty(len(order), np.uint32)
            rank[order] = np.arange(len(order), dtype=np.uint32)
            keys = tuple(present[i] for i in order)
            position = rank[np.searchsorted(present_sids, rows.sid)]
        else:
            assert member is not None
            lookup = np.zeros(len(member), np.uint32)
            lookup[ids[wanted]] = np.flatnonzero(wanted)
            position = lookup[rows.sid]
        return keys, merge([rows.with_sid(position)], width)

    def metrics(self, pattern: str = "*") -> list[str]:
        self._check_open()
        self._refresh()
        return self._index.metrics(pattern)

    def series(self, metric: str | None = None) -> list[Series]:
        self._check_open()
        self._refresh()
        return self._index.series(metric)

    def series_count(self) -> int:
        """Live series: those with a point in some tier's retention."""
        self._check_open()
        self._refresh()
        return self._index.live

    # -- maintenance ----------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Move the head into blocks and delete the WAL segments it came from."""
        self._check_writable()
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
                rows = drop_before(rows, manifest.floors.get(tier, _NO_FLOOR))
                if len(rows):
                    blocks[tier] = (
                        *blocks[tier],
                        block_files.write_block(self._root, tier, number, rows),
                    )
                    number = self._compact(tier, blocks, number + 1, obsolete)
            new_keys = self._index.keys(manifest.series_count, series_count)
            series_bytes = manifest.series_bytes
            if new_keys:
                series_bytes = append_log(self._root / _SERIES_LOG, series_bytes, new_keys)
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
        floor = self._manifest.floors.get(tier, _NO_FLOOR)
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
        self._check_writable()
        with self._maintenance_lock:
            manifest = self._manifest
            floors = dict(manifest.floors)
            blocks = dict(self._blocks)
            with self._lock:
                oldest_dirty = {t: min(m) for t, m in self._dirty.items() if m}
            dropped: list[tuple[str, int]] = []
            cuts = retention_floors(tuple(self._tiers.values()), now_ns, oldest_dirty)
            for name in self._tiers:
                floor = max(floors.get(name, _NO_FLOOR), cuts[name])
                floors[name] = floor
                dropped += [(name, b.info.number) for b in blocks[name] if b.info.max_ts < floor]
                blocks[name] = tuple(b for b in blocks[name] if b.info.max_ts >= floor)
            live = np.zeros(len(self._index), np.bool_)
            for name, kept in blocks.items():
                for block in kept:
                    _mark_live(live, block.rows, floors[name])
            with self._lock:
                # Heads under the lock: a series written since the blocks were read is live.
                for heads in (*self._frozen, self._heads):
                    for name, head in heads.items():
                        for run in head.runs():
                            _mark_live(live, run, floors[name])
                self._index.forget(np.flatnonzero(~live).tolist())
                forgotten = tuple(sorted(self._index.forgotten))
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

    def _merge_head_parts(self) -> None:
        """Merge runs of same-size head parts, sorting outside the write lock."""
        with self._maintenance_lock:
            for tier, width in self._widths.items():
                while True:
                    with self._lock:
                        head = self._heads[tier]
                        candidate = head.merge_candidate()
                    if candidate is None:
                        break
                    merged = merge(candidate[1], width)
                    with self._lock:
                        head.replace(candidate[0], merged)

    def close(self) -> None:
        """Checkpoint (writer), stop the maintenance thread and release the data dir."""
        if self._closed:
            return
        if not self._readonly:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            try:
                self.checkpoint()
            finally:
                self._wal.close()
                os.close(self._lock_fd)
        self._closed = True

    # -- opening and following --------------------------------------------------------------

    def _new_heads(self, *, combine: bool = False) -> dict[str, Head]:
        """Fresh heads; with `combine`, rollup rows of one bucket combine (`_upgrade_rollups`)."""
        return {t: Head(w, combine=combine and t != RAW) for t, w in self._widths.items()}

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self._root} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._readonly:
            raise ReadOnlyStoreError(f"store {self._root} was opened read-only")

    def _apply(self, record: Record) -> None:
        """Replay a WAL record into the index and head; the caller holds the write lock."""
        for sid, series in record.new_series:
            self._index.define(sid, series)
        for sid in self._index.forgotten_among(record.rows.sid.astype(np.int64)).tolist():
            self._index.revive(sid)  # written again after it was forgotten
        if record.tier == RAW:
            self._append_raw(record.rows)
        elif record.tier in self._tiers:  # else a tier no longer configured
            self._apply_rollup(record)

    def _restore(self, manifest: Manifest) -> None:
        """Take the manifest's watermarks, pass bounds and dirty marks; under `_lock`."""
        self._watermarks = dict(manifest.watermarks)
        self._claims = dict(manifest.claims)
        self._dirty = {t: dict(manifest.dirty.get(t, {})) for t in self._dirty}
        self._seq = manifest.write_seq
        for sid in self._index.forgotten - set(manifest.forgotten):
            self._index.revive(sid)
        self._index.forget(manifest.forgotten)

    def _load(self, manifest: Manifest) -> dict[str, tuple[Block, ...]]:
        """Series of the manifest not yet in the index, and its blocks (reusing open ones)."""
        old = self._manifest
        if manifest.series_bytes > old.series_bytes:
            added = read_log(self._root / _SERIES_LOG, old.series_bytes, manifest.series_bytes)
            for offset, series in enumerate(added):
                self._index.define(old.series_count + offset, series)
        blocks: dict[str, tuple[Block, ...]] = {}
        for tier, width in self._widths.items():
            loaded = {b.info.number: b for b in self._blocks[tier]}
            blocks[tier] = tuple(
                loaded.get(info.number) or block_files.load_block(self._root, tier, info, width)
                for info in manifest.blocks.get(tier, ())
            )
        return blocks

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
        discard_uncommitted(self._root / _SERIES_LOG, manifest.series_bytes)
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

    def _refresh(self) -> None:
        """Read-only: reload the manifest if it was replaced, then read new WAL records."""
        if not self._readonly:
            return
        with self._refresh_lock:
            while True:
                stamp = _stamp(self._root / MANIFEST)
                if stamp != self._stamp:
                    try:
                        self._reload()
                    except FileNotFoundError:
                        continue  # a block was compacted away meanwhile: read the newer manifest
                    self._stamp = stamp
                self._tail()
                if _stamp(self._root / MANIFEST) == stamp:
                    return  # else a checkpoint may have taken segments we had not read

    def _reload(self) -> None:
        manifest = read_manifest(self._root) or Manifest()
        blocks = self._load(manifest)
        with self._lock:
            self._manifest = manifest
            self._blocks = blocks
            self._heads = self._new_heads()
            self._restore(manifest)
        self._segment = manifest.wal_start
        self._offset = 0

    def _tail(self) -> None:
        """Apply WAL records after the last one read; segments are numbered consecutively."""
        wal_dir = self._root / "wal"
        while True:
            path = segment_path(wal_dir, self._segment)
            if not path.exists():
                return
            self._tail_segment(path)
            if not segment_path(wal_dir, self._segment + 1).exists():
                break
            self._tail_segment(path)  # the writer moved on: this segment is complete now
            self._segment += 1
            self._offset = 0
        self._merge_head_parts()

    def _tail_segment(self, path: Path) -> None:
        try:
            for record, end in read_records(path, self._offset):
                with self._lock:
                    self._apply(record)
                self._offset = end
        except FileNotFoundError:
            return  # deleted by a checkpoint: the manifest check in _refresh catches up


def _mark_live(live: NDArray[np.bool_], rows: Columns, floor_ns: int) -> None:
    """Mark the series of `rows` that have a row at or after `floor_ns` (ids past `live`'s end
    were defined since it was sized: live anyway)."""
    sid = rows.sid[rows.ts >= floor_ns]
    live[sid[sid < len(live)]] = True


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _lock_dir(root: Path) -> int:
    """Take the data dir's write lock (released by the OS if the process dies)."""
    fd = os.open(root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLockedError(f"another process writes to {root}") from None
    return fd
