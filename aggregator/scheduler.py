"""The rollup scheduler: turns finished buckets into rollup rows, tier by tier, incrementally.

Each rollup tier has a watermark: every bucket before it is rolled up. `run_once` rolls up the
buckets between the watermark and `now - grace` from the next finer tier (raw points for the
finest, rollup rows of the finer tier for the others) and stores the rows together with the new
watermark, atomically, so a restart resumes exactly where the last write ended.

Points that arrive behind a watermark (late data) are noted by `note_write` and become extra
partial rows at the next `run_once`; reads combine them with the bucket's other rows.

Known limit: a write racing the very read that rolls up its own bucket (a point older than
`now - grace` written during that read) can be counted twice; `grace_ns` must exceed the delay
between a point's time and its write for this to stay theoretical.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import numpy as np

from aggregator.rollups import cascade, concat, rollup
from storage.base import Store
from storage.records import NS_PER_S, Rollups, Samples, Series, Tier

log = logging.getLogger(__name__)

DEFAULT_CHUNK_NS = 3600 * NS_PER_S
MAX_SKIP_CHUNKS = 64  # an empty read may span up to this many chunks


class RollupScheduler:
    """Rolls up raw -> finest tier -> ... -> coarsest tier; call `run_once` every few seconds.

    `chunk_ns` bounds the work of one run: at most one non-empty chunk of that span is read per
    tier, so catching up on a long backlog spreads over several runs instead of one long stall
    (only a tier's very first run may read more: the span after a long empty past).
    """

    def __init__(
        self,
        store: Store,
        tiers: Sequence[Tier],
        *,
        grace_ns: int,
        chunk_ns: int = DEFAULT_CHUNK_NS,
    ) -> None:
        self._store = store
        self._tiers = sorted((t for t in tiers if not t.is_raw), key=lambda t: t.width_ns)
        if any(c.width_ns % f.width_ns for f, c in zip(self._tiers, self._tiers[1:], strict=False)):
            raise ValueError("each rollup tier's width must be a multiple of the finer one's")
        if chunk_ns % self._tiers[-1].width_ns:
            raise ValueError("chunk_ns must be a multiple of the coarsest tier's width")
        self._grace_ns = grace_ns
        self._chunk_ns = chunk_ns
        self._lock = threading.Lock()  # guards the watermark cache and the noted points
        self._run_lock = threading.Lock()  # one run at a time
        self._watermarks: dict[str, int] = {}
        self._noted: list[Samples] = []  # behind the finest watermark, not yet classified
        self._late: dict[str, list[Samples]] = {t.name: [] for t in self._tiers}

    def note_write(self, samples: Samples) -> None:
        """Keep the points of a stored batch that are behind the finest tier's watermark."""
        watermark = self._known_watermark(self._tiers[0])
        if watermark is None or not len(samples):
            return
        late = samples.ts_ns < watermark
        if late.any():
            with self._lock:
                self._noted.append(samples.take(late))

    def catch_up(self, now_ns: int, budget_s: float) -> None:
        """Run until every tier is up to date, or for about `budget_s` seconds: a backfill of
        days is rolled up in a few passes instead of one chunk per pass."""
        deadline = time.monotonic() + budget_s
        while not self.run_once(now_ns) and time.monotonic() < deadline:
            pass

    def lag_ns(self, now_ns: int) -> dict[str, int]:
        """How far behind `now_ns` each rollup tier's watermark is (0 when never run)."""
        with self._lock:
            return {t.name: now_ns - self._watermarks.get(t.name, now_ns) for t in self._tiers}

    def run_once(self, now_ns: int) -> bool:
        """Roll up every tier as far as `now_ns - grace_ns` allows (within the chunk budget);
        True when every tier got there."""
        with self._run_lock:
            with self._lock:
                noted, self._noted = Samples.concat(self._noted), []
            # Late points are sorted per tier before any write: a tier whose write fails keeps
            # its own list for the next run, and the tiers already written do not see them again.
            for tier in self._tiers:
                watermark = self._known_watermark(tier)
                late = noted.ts_ns < watermark if watermark is not None else None
                if late is not None and late.any():
                    self._late[tier.name].append(noted.take(late))
            caught_up = True
            try:
                source_mark: int | None = None
                for tier in self._tiers:
                    mark, target = self._run_tier(tier, now_ns, source_mark)
                    caught_up &= mark >= target
                    source_mark = mark
            except BaseException:
                with self._lock:
                    self._watermarks.clear()  # reread them: the failed write may have landed
                raise
            return caught_up

    def _run_tier(self, tier: Tier, now_ns: int, source_mark: int | None) -> tuple[int, int]:
        """Roll up one chunk of `tier`; its new watermark, and where it would be up to date."""
        width = tier.width_ns
        ready = now_ns - self._grace_ns
        target = ready - ready % width
        if source_mark is not None:
            target = min(target, source_mark - source_mark % width)
        stored = self._known_watermark(tier)
        watermark = stored if stored is not None else self._first_watermark(tier, now_ns, target)
        parts: list[Rollups] = []
        mark, span = watermark, self._chunk_ns
        while mark < target:
            # Chunks end on chunk boundaries, so a later run's chunks line up the same way;
            # empty ones grow, so a first run crosses a long empty past in a few reads.
            end = min(target, mark - mark % self._chunk_ns + span)
            rows = self._rows_from_finer(tier, mark, end)
            mark = end
            if len(rows):
                parts.append(rows)
                break
            span = min(2 * span, MAX_SKIP_CHUNKS * self._chunk_ns)
        late = Samples.concat(self._late[tier.name])
        if len(late):
            parts.append(self._late_rows(late, width))
        if parts or mark != stored:
            self._store.write_rollups(tier.name, concat(parts), mark)
        self._late[tier.name] = []
        with self._lock:
            self._watermarks[tier.name] = mark
        return mark, target

    def _known_watermark(self, tier: Tier) -> int | None:
        with self._lock:
            if tier.name in self._watermarks:
                return self._watermarks[tier.name]
        stored = self._store.watermark(tier.name)
        if stored is not None:
            with self._lock:
                self._watermarks.setdefault(tier.name, stored)
        return stored

    def _first_watermark(self, tier: Tier, now_ns: int, target: int) -> int:
        """Where a tier that was never rolled up starts: now on an empty store, else as far back
        as the tier keeps data (the empty past before the oldest data is skipped quickly)."""
        if self._store.series_count() == 0:
            return target
        oldest = now_ns - tier.retention_ns
        return min(target, oldest - oldest % tier.width_ns)

    def _rows_from_finer(self, tier: Tier, start_ns: int, end_ns: int) -> Rollups:
        finer = [t for t in self._tiers if t.width_ns < tier.width_ns]
        if not finer:
            return rollup(self._store.read(None, start_ns, end_ns), tier.width_ns)
        source = self._store.read_rollups(finer[-1].name, None, start_ns, end_ns)
        return cascade(source, tier.width_ns)

    def _late_rows(self, late: Samples, width: int) -> Rollups:
        """Partial rows for late points: their min, max, sum and count, and as `last` the
        bucket's true last point read back from raw (a late point is rarely the latest)."""
        used = np.unique(late.index)
        series: tuple[Series, ...] = tuple(late.series[i] for i in used.tolist())
        remap = np.zeros(len(late.series), np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        compact = Samples(series, remap[late.index], late.ts_ns, late.values)
        rows = rollup(compact, width)
        lo = int(rows.bucket_ns.min())
        buckets = (int(rows.bucket_ns.max()) - lo) // width + 1
        stored = rollup(self._store.read(series, lo, lo + buckets * width), width)
        row_keys = rows.index.astype(np.int64) * buckets + (rows.bucket_ns - lo) // width
        stored_keys = stored.index.astype(np.int64) * buckets + (stored.bucket_ns - lo) // width
        last = rows.last
        if len(stored):
            pos = np.minimum(np.searchsorted(stored_keys, row_keys), len(stored_keys) - 1)
            last = np.where(stored_keys[pos] == row_keys, stored.last[pos], rows.last)
        log.info("rolled up %d late points into %d partial rows", len(late), len(rows))
        return Rollups(
            series, rows.index, rows.bucket_ns, rows.min, rows.max, rows.sum, rows.count, last
        )
