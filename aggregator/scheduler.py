"""The rollup scheduler: turns finished buckets into rollup rows, tier by tier, incrementally.

Each rollup tier has a watermark: every bucket before it is rolled up. A pass of a tier first
tells the store how far it will go (`Store.begin_rollup`), so a point written while it reads
marks its bucket dirty instead of being missed; then it reads the buckets between the watermark
and `now - grace` from the next finer tier (raw points for the finest, rows of the finer tier
for the others) and stores the rows together with the new watermark, atomically, so a restart
resumes exactly where the last write ended.

Late points (behind a tier's bound when written) leave their bucket dirty in the store, durably
with the write; readers take dirty buckets from the finer tier. Each pass also rolls up the
dirty buckets of one chunk again, whole, from the finer tier, and clears them in the same write:
a row written replaces the stored row of its bucket, so a bucket rolled up twice still counts
every point once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from aggregator.rollups import cascade
from aggregator.sketch_rollups import cascade_sketches
from aggregator.tiered import read_rows, read_sketches
from storage.base import DirtyBuckets, Store
from storage.records import NS_PER_S, Rollups, Sketches, Tier

DEFAULT_CHUNK_NS = 3600 * NS_PER_S
MAX_SKIP_CHUNKS = 64  # an empty read may span up to this many chunks


class RollupScheduler:
    """Rolls up raw -> finest tier -> ... -> coarsest tier; call `run_once` every few seconds.

    `chunk_ns` bounds the work of one run: at most one non-empty chunk of that span is read per
    tier, and the dirty buckets of one chunk rolled up again, so catching up on a long backlog
    spreads over several runs instead of one long stall (only a tier's very first run may read
    more: the span after a long empty past).
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
        self._all_tiers = tuple(tiers)
        self._tiers = sorted((t for t in tiers if not t.is_raw), key=lambda t: t.width_ns)
        if any(c.width_ns % f.width_ns for f, c in zip(self._tiers, self._tiers[1:], strict=False)):
            raise ValueError("each rollup tier's width must be a multiple of the finer one's")
        if chunk_ns % self._tiers[-1].width_ns:
            raise ValueError("chunk_ns must be a multiple of the coarsest tier's width")
        self._grace_ns = grace_ns
        self._chunk_ns = chunk_ns
        self._lock = threading.Lock()  # guards the watermark cache
        self._run_lock = threading.Lock()  # one run at a time
        self._watermarks: dict[str, int] = {}

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
        """Roll up every tier as far as `now_ns - grace_ns` allows, and its dirty buckets again
        (within the chunk budget); True when every tier got there and is clean."""
        with self._run_lock:
            caught_up = True
            source_mark: int | None = None
            for tier in self._tiers:
                mark, done = self._run_tier(tier, now_ns, source_mark)
                caught_up &= done
                source_mark = mark
            return caught_up

    def _run_tier(self, tier: Tier, now_ns: int, source_mark: int | None) -> tuple[int, bool]:
        """Roll up one chunk of `tier` and one chunk of its dirty buckets; its new watermark,
        and whether it is up to date and clean."""
        width = tier.width_ns
        ready = now_ns - self._grace_ns
        target = ready - ready % width
        if source_mark is not None:
            target = min(target, source_mark - source_mark % width)
        stored = self._store.watermark(tier.name)
        watermark = stored if stored is not None else self._first_watermark(tier, now_ns, target)
        # Each read is announced first, up to its own end only: points ahead of it are read by
        # a later chunk, so they need no mark. The snapshot comes after the first announcement
        # and before any read: every bucket dirty by then is read below, whole, so clearing
        # those is safe; later marks stay for the next pass.
        mark, span = watermark, self._chunk_ns
        self._store.begin_rollup(tier.name, self._chunk_end(mark, span, target))
        dirty = self._store.dirty(tier.name)
        parts: list[tuple[Rollups, Sketches]] = []
        while mark < target:
            # Chunks end on chunk boundaries, so a later run's chunks line up the same way;
            # empty ones grow, so a first run crosses a long empty past in a few reads.
            end = self._chunk_end(mark, span, target)
            self._store.begin_rollup(tier.name, end)
            rows = self._rows_from_finer(tier, mark, end)
            mark = end
            if len(rows[0]) or len(rows[1]):
                parts.append(rows)
                break
            span = min(2 * span, MAX_SKIP_CHUNKS * self._chunk_ns)
        behind = dirty.within(-(2**63), watermark)
        again = self._one_chunk(behind)
        parts += [self._rows_from_finer(tier, lo, hi) for lo, hi in again.spans(width)]
        cleared = DirtyBuckets(
            np.concatenate([again.bucket_ns, dirty.within(watermark, mark).bucket_ns]), dirty.seq
        )
        if parts or mark != stored or len(cleared):
            rollups = Rollups.concat([p[0] for p in parts])
            sketches = Sketches.concat([p[1] for p in parts])
            self._store.write_rollups(tier.name, rollups, mark, cleared, sketches)
        with self._lock:
            self._watermarks[tier.name] = mark
        return mark, mark >= target and len(again) == len(behind)

    def _chunk_end(self, mark: int, span: int, target: int) -> int:
        """Where a read from `mark` of up to `span` ends: on a chunk boundary, or at `target`."""
        return max(mark, min(target, mark - mark % self._chunk_ns + span))

    def _one_chunk(self, dirty: DirtyBuckets) -> DirtyBuckets:
        """The dirty buckets in the chunk of the oldest one."""
        if not len(dirty):
            return dirty
        first = int(dirty.bucket_ns[0])
        start = first - first % self._chunk_ns
        return dirty.within(start, start + self._chunk_ns)

    def _first_watermark(self, tier: Tier, now_ns: int, target: int) -> int:
        """Where a tier that was never rolled up starts: now on a store still empty once a pass
        to now is announced, else as far back as the tier keeps data (the empty past before the
        oldest data is skipped quickly)."""
        if self._store.series_count() == 0:
            self._store.begin_rollup(tier.name, target)
            if self._store.series_count() == 0:
                return target  # a point written since is marked dirty
        oldest = now_ns - tier.retention_ns
        return min(target, oldest - oldest % tier.width_ns)

    def _rows_from_finer(self, tier: Tier, start_ns: int, end_ns: int) -> tuple[Rollups, Sketches]:
        """Whole rows and sketches of `tier` for [start, end), from the finer tiers (their
        dirty buckets from theirs)."""
        finer = max((t for t in self._all_tiers if t.width_ns < tier.width_ns), key=_width)
        span = (self._store, self._all_tiers, finer, None, start_ns, end_ns, tier.width_ns)
        return (
            cascade(read_rows(*span), tier.width_ns),
            cascade_sketches(read_sketches(*span), tier.width_ns),
        )


def _width(tier: Tier) -> int:
    return tier.width_ns
