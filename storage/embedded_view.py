"""What the embedded store's writer and its read-only followers share: one data dir's state in
memory (series index, blocks, heads, watermarks, dirty marks) and every read over it.

Read: blocks overlapping the range (binary search per series), head parts, and the short
unsorted tail, stable-sorted into (index, ts) with the last write winning. State changes only
through WAL records applied in order (`_apply`), so the writer, its replay after a crash and a
follower tailing the log hold the same state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

import numpy as np
from numpy.typing import NDArray

from storage import blocks as block_files
from storage import embedded_presence, sketch_gather
from storage.base import DirtyBuckets, data_ranges
from storage.blocks import Block
from storage.columns import (
    RAW_WIDTH,
    ROLLUP_WIDTH,
    SKETCH_WIDTH,
    Columns,
    IdArray,
    concat,
    merge,
    select_sorted,
    select_unsorted,
)
from storage.errors import StoreClosedError
from storage.head import Head, Snapshot
from storage.manifest import Manifest
from storage.records import RAW, IntArray, Rollups, Samples, Series, Sketches, Tier
from storage.series_index import SeriesIndex, cyclic_gc_paused, read_log, sort_key
from storage.sketch_blocks import SketchRun
from storage.sketch_changes import ChangeLog, Span
from storage.sketch_packs import PackedSketches
from storage.wal import Record

SERIES_LOG = "series.log"
NO_FLOOR = -(2**63)
_SKETCH_TABLE = "sketch."


def sketch_table(tier: str) -> str:
    """The table (heads, blocks) holding the sketches of `tier`; a tier's scalar rows are the
    table of its own name."""
    return _SKETCH_TABLE + tier


def tier_of(table: str) -> str:
    return table.removeprefix(_SKETCH_TABLE)


class StoreView:
    """The state of one embedded data dir and the reads over it (`Store`'s read half)."""

    def __init__(self, path: Path, tiers: Sequence[Tier]) -> None:
        self._root = Path(path)
        self._tiers = {t.name: t for t in tiers}
        if RAW not in self._tiers:
            raise ValueError("the tiers must include the raw tier")
        self._widths = {t: RAW_WIDTH if t == RAW else ROLLUP_WIDTH for t in self._tiers}
        self._widths |= {sketch_table(t): SKETCH_WIDTH for t in self._tiers}
        self._closed = False
        self._lock = threading.Lock()  # orders writes; guards the heads and swapped views
        self._maintenance_lock = threading.Lock()  # one checkpoint, merge or retention at once
        self._index = SeriesIndex()
        self._manifest = Manifest()
        self._blocks: dict[str, tuple[Block, ...]] = {t: () for t in self._widths}
        self._heads = self._new_heads()
        self._frozen: tuple[dict[str, Head], ...] = ()  # heads being written as blocks
        self._watermarks: dict[str, int] = {}
        self._claims: dict[str, int] = {}
        self._dirty: dict[str, dict[int, int]] = {t: {} for t in self._tiers if t != RAW}
        self._seq = 0  # raw write records so far; numbers the dirty marks
        self._changes = ChangeLog()  # sketch times changed per tier, for caches of answers

    def refresh(self) -> None:
        """Catch up with the data dir: nothing to do for the writer, which holds it."""

    def close(self) -> None:
        self._closed = True

    def _part_added(self) -> None:
        """A head finished a sorted part: merges may be due (the writer's thread does them)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def dirty(self, tier: str) -> DirtyBuckets:
        self._check_open()
        self._check_rollup_tier(tier)
        with self._lock:
            buckets = np.fromiter(sorted(self._dirty[tier]), np.int64, len(self._dirty[tier]))
            return DirtyBuckets(buckets, self._seq)

    def _bound(self, tier: str) -> int:
        """Raw points before this make their bucket of `tier` dirty."""
        return max(self._watermarks.get(tier, NO_FLOOR), self._claims.get(tier, NO_FLOOR))

    def _append_raw(self, record: Record) -> None:
        """Append a raw record's rows and mark the buckets they make dirty; under `_lock`."""
        self._seq += 1
        self._append_rows(record)
        self._mark_dirty(record.rows.ts, 0)
        self._mark_dirty(record.sketches.ts, 0)

    def _append_rows(self, record: Record) -> None:
        """Append a record's rows and sketch rows to the heads of its tier; under `_lock`."""
        added = self._heads[record.tier].append(record.rows)
        added |= self._heads[sketch_table(record.tier)].append(record.sketches)
        if len(record.sketches):
            ts = record.sketches.ts
            self._changes.note(record.tier, int(ts.min()), int(ts.max()))
        if added:
            self._part_added()

    def _mark_dirty(self, ts_ns: IntArray, finer_than_ns: int) -> None:
        """Mark the buckets of `ts_ns` behind the bound of each rollup tier wider than
        `finer_than_ns` dirty, numbered by the current write; under `_lock`."""
        if not len(ts_ns):
            return
        oldest = int(ts_ns.min())
        for tier, marks in self._dirty.items():
            bound = self._bound(tier)
            width = self._tiers[tier].width_ns
            if oldest >= bound or width <= finer_than_ns:
                continue
            late = ts_ns[ts_ns < bound]
            for bucket in np.unique(late - late % width).tolist():
                marks[bucket] = self._seq

    def _apply_rollup(self, record: Record) -> None:
        """Apply a rollup tier's record: rows, watermark, pass bound, cleared marks."""
        tier = record.tier
        self._append_rows(record)
        if record.watermark_ns is None and record.claim_ns is None and record.cleared is None:
            # Backfill beyond raw: rows written straight into their finest tier; the coarser
            # tiers that rolled those buckets up already take them again from it.
            self._seq += 1
            self._mark_dirty(record.rows.ts, self._tiers[tier].width_ns)
            self._mark_dirty(record.sketches.ts, self._tiers[tier].width_ns)
        if record.watermark_ns is not None:
            self._watermarks[tier] = record.watermark_ns
        if record.claim_ns is not None:
            self._claims[tier] = record.claim_ns
        if record.cleared is not None:
            marks, seq = self._dirty[tier], record.cleared.seq
            for bucket in record.cleared.bucket_ns:
                if marks.get(bucket, seq + 1) <= seq:
                    del marks[bucket]

    def _check_rollup_tier(self, tier: str) -> None:
        if tier == RAW or tier not in self._tiers:
            raise ValueError(f"not a rollup tier: {tier!r}")

    def watermark(self, tier: str) -> int | None:
        self._check_open()
        return self._watermarks.get(tier)

    def read(self, series: Sequence[Series] | None, start_ns: int, end_ns: int) -> Samples:
        keys, rows = self._select(RAW, series, start_ns, end_ns)
        return Samples(keys, rows.sid.view(np.int32), rows.ts, rows.cols[0])

    def read_rollups(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Rollups:
        self._check_rollup_tier(tier)
        keys, rows = self._select(tier, series, start_ns, end_ns)
        return Rollups(keys, rows.sid.view(np.int32), rows.ts, *rows.cols)

    def read_sketches(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Sketches:
        found = self._sketch_sources(tier, series, start_ns, end_ns)
        if found is None:
            return replace(Sketches.empty(), series=_keys(series))
        sources, keys, position = found
        index, ts, sketch_keys, values = sketch_gather.gather(sources, position)
        return Sketches(keys, index.astype(np.int32), ts, sketch_keys, values)

    def read_packed_sketches(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> PackedSketches:
        """`read_sketches`'s sketches packed as they are at rest (`storage.sketch_packs`)."""
        found = self._sketch_sources(tier, series, start_ns, end_ns)
        if found is None:
            return PackedSketches.empty(_keys(series))
        sources, keys, position = found
        return sketch_gather.gather_packed(sources, position, keys)

    def _sketch_sources(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> tuple[list[sketch_gather.Source], tuple[Series, ...], NDArray[np.uint32]] | None:
        """What a sketch read gathers from: the sources of its blocks and heads, the keys of
        its answer and each series id's position in them; None when the range is empty."""
        if tier not in self._tiers:
            raise ValueError(f"not a tier: {tier!r}")
        scope = self._scope(sketch_table(tier), series, start_ns, end_ns)
        if scope is None:
            return None
        sources = [
            sketch_gather.Source.compact(b.rows, b.rows.pick(scope.sids, scope.start_ns, end_ns))
            if isinstance(b.rows, SketchRun)
            else sketch_gather.Source.of_rows(b.select(scope.sids, scope.start_ns, end_ns))
            for b in scope.blocks
        ]
        sources += [sketch_gather.Source.of_rows(r) for r in _head_rows(scope, end_ns)]
        present = np.unique(np.concatenate([np.empty(0, np.uint32), *(s.sid for s in sources)]))
        keys, position = self._positions(series, scope, present)
        return sources, keys, position

    def sketch_changes(self, tier: str, since: int) -> tuple[int, tuple[Span, ...]]:
        self._check_open()
        with self._lock:
            return self._changes.number, self._changes.since(tier, since)

    def _select(
        self, table: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> tuple[tuple[Series, ...], Columns]:
        """Rows of `table` in range, their sid replaced by the position in the returned keys
        (below 2**31), in arrays of their own: a caller may keep or change them."""
        width = self._widths[table]
        scope = self._scope(table, series, start_ns, end_ns)
        if scope is None:
            return _keys(series), Columns.empty(width)
        rows = _gather(scope, end_ns, width)
        if series is None:
            keys, position = self._positions(series, scope, np.unique(rows.sid))
            # A block or head part wholly in range is handed back as it is (`select_sorted`).
            rows = Columns(rows.sid, np.array(rows.ts), tuple(np.array(c) for c in rows.cols))
        else:
            # Given series, every row is taken (`select_sorted`, `select_unsorted`): the
            # arrays are new already. The ids present matter only to a read of every series.
            keys, position = self._positions(series, scope, rows.sid[:0])
        return keys, merge([rows.with_sid(position[rows.sid])], width)

    def _scope(
        self, table: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> _Scope | None:
        """What a read of `table` in range looks at: None when the range is empty."""
        self._check_open()
        with self._lock:
            start_ns = max(start_ns, self._manifest.floors.get(tier_of(table), NO_FLOOR))
            blocks = [b for b in self._blocks[table] if b.overlaps(start_ns, end_ns)]
            heads: list[Snapshot] = [h[table].snapshot() for h in self._frozen]
            heads.append(self._heads[table].snapshot())
        if end_ns <= start_ns:
            return None
        if series is None:
            return _Scope(start_ns, blocks, heads, None, None, np.empty(0, np.int64))
        ids = self._index.lookup(tuple(series))
        sids = np.unique(ids[ids >= 0]).astype(np.uint32)
        return _Scope(start_ns, blocks, heads, sids, _membership(sids), ids)

    def _positions(
        self, series: Sequence[Series] | None, scope: _Scope, present: IdArray
    ) -> tuple[tuple[Series, ...], NDArray[np.uint32]]:
        """The keys of a read's answer and each series id's position in them: the given
        series, or else the `present` ones (sorted ids) in series order. Only the ids read are
        set: the lookup is not cleared, which would cost 4 bytes of every series before them."""
        if series is not None:
            assert scope.member is not None
            wanted = scope.ids >= 0
            lookup = np.empty(len(scope.member), np.uint32)
            lookup[scope.ids[wanted]] = np.flatnonzero(wanted)
            return tuple(series), lookup
        found = [self._index.key(s) for s in present.tolist()]
        order = sorted(range(len(found)), key=lambda i: sort_key(found[i]))
        lookup = np.empty(int(present[-1]) + 1 if len(present) else 0, np.uint32)
        lookup[present[order]] = np.arange(len(order), dtype=np.uint32)
        return tuple(found[i] for i in order), lookup

    def _stored(self, tier: str, sids: IdArray, start_ns: int, end_ns: int) -> Columns:
        """The rows of `tier` for the sorted `sids` in range, one per bucket; under `_lock`."""
        blocks = [b for b in self._blocks[tier] if b.overlaps(start_ns, end_ns)]
        heads = [h[tier].snapshot() for h in (*self._frozen, self._heads)]
        member = _membership(sids)
        scope = _Scope(start_ns, blocks, heads, sids, member, np.empty(0, np.int64))
        return merge([_gather(scope, end_ns, self._widths[tier])], self._widths[tier])

    def series_with_data(
        self, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> list[Series]:
        found = [np.empty(0, np.uint32)]
        floor = self._manifest.floors.get(RAW)
        for tier, lo, hi in data_ranges(self._tiers.values(), floor, start_ns, end_ns):
            if (scope := self._scope(tier, series, lo, hi)) is not None:
                found.append(embedded_presence.present_ids(scope, len(self._index), hi))
        return embedded_presence.series_of(self._index, series, np.unique(np.concatenate(found)))

    def metrics(self, pattern: str = "*") -> list[str]:
        self._check_open()
        return self._index.metrics(pattern)

    def series(self, metric: str | None = None) -> list[Series]:
        self._check_open()
        return self._index.series(metric)

    def series_with(self, metric: str, tags: Sequence[tuple[str, str]]) -> list[Series]:
        self._check_open()
        return self._index.series_with(metric, tags)

    def tag_keys(self, metric: str) -> list[str]:
        self._check_open()
        return self._index.tag_keys(metric)

    def tag_values(self, metric: str, key: str) -> list[str]:
        self._check_open()
        return self._index.tag_values(metric, key)

    def series_count(self) -> int:
        """Live series: those with a point in some tier's retention."""
        self._check_open()
        return self._index.live

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

    def _forget_aged_out(
        self, blocks: dict[str, tuple[Block, ...]], floors: dict[str, int]
    ) -> tuple[int, ...]:
        """Forget the series with no row at or after its tier's floor in `blocks` or the
        heads; every forgotten id, sorted."""
        live = np.zeros(len(self._index), np.bool_)
        for name, kept in blocks.items():
            for block in kept:
                _mark_live(live, block.keys(), floors[tier_of(name)])
        with self._lock:
            # Heads under the lock: a series written since the blocks were read is live.
            for heads in (*self._frozen, self._heads):
                for name, head in heads.items():
                    for run in head.runs():
                        _mark_live(live, run, floors[tier_of(name)])
            self._index.forget(np.flatnonzero(~live).tolist())
            return tuple(sorted(self._index.forgotten))

    def _new_heads(self, *, combine: bool = False) -> dict[str, Head]:
        """Fresh heads; with `combine`, rollup rows of one bucket combine (`_upgrade_rollups`)."""
        return {t: Head(w, combine=combine and w == ROLLUP_WIDTH) for t, w in self._widths.items()}

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self._root} is closed")

    def _apply(self, record: Record) -> None:
        """Replay a WAL record into the index and head; the caller holds the write lock."""
        for sid, series in record.new_series:
            self._index.define(sid, series)
        for rows in (record.rows, record.sketches):  # a series written again after forgotten
            for sid in self._index.forgotten_among(rows.sid.astype(np.int64)).tolist():
                self._index.revive(sid)
        if record.tier == RAW:
            self._append_raw(record)
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
            with cyclic_gc_paused():
                added = read_log(self._root / SERIES_LOG, old.series_bytes, manifest.series_bytes)
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


def _mark_live(live: NDArray[np.bool_], rows: Columns, floor_ns: int) -> None:
    """Mark the series of `rows` that have a row at or after `floor_ns` (ids past `live`'s end
    were defined since it was sized: live anyway)."""
    sid = rows.sid[rows.ts >= floor_ns]
    live[sid[sid < len(live)]] = True


def _membership(sids: IdArray) -> NDArray[np.bool_]:
    """A mask over series ids up to the last of the sorted `sids`, True at them, with the spare
    last slot `select_unsorted` clips greater ids to: sized by the ids read, not the store."""
    member = np.zeros(int(sids[-1]) + 2 if len(sids) else 1, np.bool_)
    member[sids] = True
    return member


@dataclass(frozen=True, slots=True)
class _Scope:
    """The blocks and heads a read looks at, from the floor on, and which series ids."""

    start_ns: int
    blocks: list[Block]
    heads: list[Snapshot]
    sids: IdArray | None  # sorted; None: every series
    member: NDArray[np.bool_] | None  # a mask of `sids` (`_membership`)
    ids: IntArray  # the id of each series asked for (-1: unknown)


def _keys(series: Sequence[Series] | None) -> tuple[Series, ...]:
    return () if series is None else tuple(series)


def _gather(scope: _Scope, end_ns: int, width: int) -> Columns:
    """The rows of the scope's blocks and heads in range, in write order."""
    pieces = [b.select(scope.sids, scope.start_ns, end_ns) for b in scope.blocks]
    return concat([*pieces, *_head_rows(scope, end_ns)], width)


def _head_rows(scope: _Scope, end_ns: int) -> list[Columns]:
    """The rows of the scope's heads in range, in write order."""
    runs = []
    for head in scope.heads:
        runs += [select_sorted(p, scope.sids, scope.start_ns, end_ns) for p in head.parts]
        runs += [select_unsorted(c, scope.member, scope.start_ns, end_ns) for c in head.chunks]
    return runs
