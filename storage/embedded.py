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
Recovery, checkpoints, block merges and retention are `storage.embedded_durable`'s.
Reads are the shared `StoreView`'s; a read-only follower in another process is an
`EmbeddedReader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from storage.base import DirtyBuckets, WriteResult
from storage.columns import (
    ROLLUP_WIDTH,
    SKETCH_WIDTH,
    Columns,
    add_into,
    add_sketches_into,
    summarise,
    summarise_sketches,
)
from storage.embedded_durable import DurableView
from storage.embedded_view import NO_FLOOR, sketch_table
from storage.records import (
    RAW,
    FloatArray,
    IndexArray,
    IntArray,
    Rollups,
    Samples,
    Series,
    Sketches,
    Tier,
)
from storage.wal import Cleared, Record, encode


class EmbeddedStore(DurableView):
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
        self._max_series = max_series
        super().__init__(
            path,
            tiers,
            checkpoint_rows=checkpoint_rows,
            checkpoint_interval_s=checkpoint_interval_s,
        )

    def write(self, samples: Samples, sketches: Sketches | None = None) -> WriteResult:
        self._check_open()
        if not len(samples) and (sketches is None or not len(sketches)):
            return WriteResult(0)
        with self._lock:
            rows, new_series, refused_series = self._rows(
                samples.series, samples.index, samples.ts_ns, (samples.values,)
            )
            refused = len(samples) - len(rows)
            sketch_rows, more_series, more_refused = self._sketch_rows(sketches)
            new_series += more_series
            refused_series += more_refused
            floor = self._manifest.floors.get(RAW, NO_FLOOR)
            old, old_sketches = rows.ts < floor, sketch_rows.ts < floor
            backfill: list[Record] = []
            too_old = 0
            if old.any() or old_sketches.any():
                backfill, too_old = self._backfill(rows.take(old), sketch_rows.take(old_sketches))
                rows, sketch_rows = rows.take(~old), sketch_rows.take(~old_sketches)
            if not len(rows) and not len(sketch_rows) and not backfill and not new_series:
                return WriteResult(0, refused, refused_series, too_old)
            # The raw record first, even empty: it defines the batch's new series.
            record = Record(RAW, rows, new_series, sketches=sketch_rows)
            ticket = self._wal.submit(encode(record))
            self._append_raw(record)
            for record in backfill:
                ticket = self._wal.submit(encode(record))
                self._apply_rollup(record)
        self._wal.wait(ticket)
        return WriteResult(len(samples) - refused - too_old, refused, refused_series, too_old)

    def _sketch_rows(
        self, sketches: Sketches | None
    ) -> tuple[Columns, tuple[tuple[int, Series], ...], int]:
        """`_rows` of a batch of sketches (none: no rows)."""
        if sketches is None or not len(sketches):
            return Columns.empty(SKETCH_WIDTH), (), 0
        return self._rows(
            sketches.series,
            sketches.index,
            sketches.ts_ns,
            (sketches.keys.astype(np.float64), sketches.values),
        )

    def _backfill(self, rows: Columns, sketch_rows: Columns) -> tuple[list[Record], int]:
        """Records for raw rows (and sketches) older than the raw tier keeps: each goes to the
        finest rollup tier that still keeps its time, added to that tier's row (or sketch) of
        its bucket (coarser tiers roll the bucket up again from there); and how many rows are
        older than every tier."""
        records = []
        for tier in sorted((t for t in self._tiers.values() if not t.is_raw), key=_width):
            floor = self._manifest.floors.get(tier.name, NO_FLOOR)
            here = rows.ts >= floor
            sketches_here = sketch_rows.ts >= floor
            if not here.any() and not sketches_here.any():
                continue
            new = summarise(rows.take(here), tier.width_ns)
            new_sketches = summarise_sketches(sketch_rows.take(sketches_here), tier.width_ns)
            rows, sketch_rows = rows.take(~here), sketch_rows.take(~sketches_here)
            if len(new):
                new = add_into(self._stored_keys(tier.name, new, tier.width_ns), new)
            if len(new_sketches):
                table = sketch_table(tier.name)
                stored = self._stored_keys(table, new_sketches, tier.width_ns)
                new_sketches = add_sketches_into(stored, new_sketches)
            records.append(Record(tier.name, new, sketches=new_sketches))
        return records, len(rows)

    def _stored_keys(self, table: str, new: Columns, width_ns: int) -> Columns:
        """The stored rows of `table` for the (sid, bucket) keys of `new`; under `_lock`."""
        lo, hi = int(new.ts.min()), int(new.ts.max()) + 1
        stored = self._stored(table, np.unique(new.sid), lo, hi)
        span = (hi - lo) // width_ns + 1
        keys = new.sid.astype(np.int64) * span + (new.ts - lo) // width_ns
        stored_keys = stored.sid.astype(np.int64) * span + (stored.ts - lo) // width_ns
        return stored.take(np.isin(stored_keys, keys))

    def write_rollups(
        self,
        tier: str,
        rollups: Rollups,
        watermark_ns: int,
        rerolled: DirtyBuckets | None = None,
        sketches: Sketches | None = None,
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
            sketch_rows, more_series, _ = self._sketch_rows(sketches)
            new_series += more_series
            cleared = None
            if rerolled is not None and len(rerolled):
                cleared = Cleared(rerolled.seq, tuple(rerolled.bucket_ns.tolist()))
            record = Record(
                tier, rows, new_series, watermark_ns, cleared=cleared, sketches=sketch_rows
            )
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
        ids = self._index.lookup(series, remember=True)
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


def _width(tier: Tier) -> int:
    return tier.width_ns
