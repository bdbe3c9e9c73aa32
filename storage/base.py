"""The `Store` protocol: what the collector, the aggregator and the query API need of a backend.

A backend keeps raw samples and rollup rows per tier. Every method is synchronous and may block:
async callers go through `asyncio.to_thread` (or the backend's own executor).

Late points: a raw point written behind a rollup tier's bound (its watermark, or the end of a
rollup pass under way) makes its bucket of that tier dirty, in the same durable step as the
write. Readers take a dirty bucket from the finer tier until a pass rolls it up again (whole,
from the finer tier), so every acknowledged point is in every tier's answer at once, exactly
once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self, runtime_checkable

import numpy as np

from storage.records import RAW, IntArray, Rollups, Samples, Series, Sketches, Tier
from storage.series_index import sort_key


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write kept: points stored; points refused because their series was new and the
    store already held `max_series` series; points refused as older than the raw retention."""

    accepted: int
    refused_points: int = 0
    refused_series: int = 0
    too_old: int = 0


@dataclass(frozen=True, slots=True)
class DirtyBuckets:
    """Buckets of one rollup tier that took raw points after they were rolled up, as the store
    held them after its write number `seq`: a pass that rolls them up again from what it reads
    after taking this clears them, unless a later write made them dirty again. `recent_ns` are
    dirty too but marked too recently for a pass to clear (a store whose writes may still be
    landing); readers take both from the finer tier."""

    bucket_ns: IntArray  # sorted bucket starts
    seq: int = 0
    recent_ns: IntArray = field(default_factory=lambda: np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.bucket_ns)

    def within(self, start_ns: int, end_ns: int) -> DirtyBuckets:
        """The buckets (and recent ones) that start in [start_ns, end_ns)."""
        return DirtyBuckets(
            _within(self.bucket_ns, start_ns, end_ns),
            self.seq,
            _within(self.recent_ns, start_ns, end_ns),
        )

    def for_readers(self) -> IntArray:
        """Every dirty bucket, recent or not, sorted."""
        if not len(self.recent_ns):
            return self.bucket_ns
        return np.union1d(self.bucket_ns, self.recent_ns)

    def spans(self, width_ns: int) -> list[tuple[int, int]]:
        """The buckets as [start, end) spans, adjacent buckets joined."""
        return bucket_spans(self.bucket_ns, width_ns)


def bucket_spans(bucket_ns: IntArray, width_ns: int) -> list[tuple[int, int]]:
    """Sorted bucket starts as [start, end) spans, adjacent buckets joined."""
    if not len(bucket_ns):
        return []
    breaks = np.flatnonzero(np.diff(bucket_ns) != width_ns) + 1
    starts = bucket_ns[np.concatenate([[0], breaks])]
    ends = bucket_ns[np.concatenate([breaks - 1, [len(bucket_ns) - 1]])] + width_ns
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def retention_floors(
    tiers: Sequence[Tier], now_ns: int, oldest_dirty: dict[str, int]
) -> dict[str, int]:
    """Where each tier's retention cuts at `now_ns`: on the next coarser tier's bucket edges,
    and never past the oldest dirty bucket (`oldest_dirty`, by tier) of a coarser tier, which
    is rolled up again from the finer ones."""
    floors = {}
    by_width = sorted(tiers, key=lambda t: t.width_ns)
    for tier, coarser in zip(by_width, [*by_width[1:], None], strict=True):
        floor = now_ns - tier.retention_ns
        if coarser is not None:
            floor -= floor % coarser.width_ns
        for other in by_width:
            if other.width_ns > tier.width_ns and other.name in oldest_dirty:
                floor = min(floor, oldest_dirty[other.name])
        floors[tier.name] = floor
    return floors


def data_ranges(
    tiers: Iterable[Tier], raw_floor_ns: int | None, start_ns: int, end_ns: int
) -> list[tuple[str, int, int]]:
    """Where `StoreReader.series_with_data` looks, as (tier, start_ns, end_ns) reads: raw in
    the range, and, for the part of it before the raw retention floor (whose raw points are
    gone, rolled up), the coarsest rollup tier's buckets that overlap that part."""
    if end_ns <= start_ns:
        return []
    found = [(RAW, start_ns, end_ns)]
    rollups = [t for t in tiers if not t.is_raw]
    if raw_floor_ns is not None and rollups and start_ns < raw_floor_ns:
        coarsest = max(rollups, key=lambda t: t.width_ns)
        found.append((coarsest.name, start_ns - coarsest.width_ns + 1, min(end_ns, raw_floor_ns)))
    return found


def in_order(found: Collection[Series], series: Sequence[Series] | None) -> list[Series]:
    """The `found` series in the order of `series`, each once (None: sorted)."""
    if series is None:
        return sorted(found, key=sort_key)
    return [s for s in dict.fromkeys(series) if s in found]


def _within(bucket_ns: IntArray, start_ns: int, end_ns: int) -> IntArray:
    lo, hi = np.searchsorted(bucket_ns, [start_ns, end_ns])
    return bucket_ns[lo:hi]


class StoreReader(Protocol):
    """What reads need of a backend: the query engine, the dashboards, the chat bot."""

    def watermark(self, tier: str) -> int | None:
        """The last watermark written for `tier`, or None if it was never rolled up."""
        ...

    def dirty(self, tier: str) -> DirtyBuckets:
        """The dirty buckets of rollup tier `tier`."""
        ...

    def read(self, series: Sequence[Series] | None, start_ns: int, end_ns: int) -> Samples:
        """Raw points with start_ns <= ts < end_ns of `series` (None: every series).

        The result's `series` is the given sequence (or every series that has points); points
        are sorted by (index, ts_ns), one per timestamp (the last written wins)."""
        ...

    def read_rollups(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Rollups:
        """Rollup rows of `tier` with start_ns <= bucket_ns < end_ns, one per (series, bucket)
        (the last written), sorted by (index, bucket_ns). Dirty buckets are included as
        stored: readers that want them whole take them from the finer tier."""
        ...

    def read_sketches(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Sketches:
        """Sketches of `tier` (raw: as written, one per flush; a rollup tier: one per bucket)
        with start_ns <= ts < end_ns, the last written of each (series, ts), sorted by
        (index, ts_ns, key). Dirty buckets as stored, as for `read_rollups`."""
        ...

    def series_with_data(
        self, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> list[Series]:
        """The series of `series` (None: every series), in its order and each once (None:
        sorted), that have data in [start_ns, end_ns): a raw point there, or, where the range
        is before the raw retention floor, a row of the coarsest rollup tier whose bucket
        overlaps it (`data_ranges`). Sketches do not count. Cheaper than a read: no points
        come back."""
        ...

    def metrics(self, pattern: str = "*") -> list[str]:
        """Metric names matching the glob `pattern`, sorted."""
        ...

    def series(self, metric: str | None = None) -> list[Series]:
        """Every series of `metric` (None: of every metric), sorted."""
        ...

    def series_count(self) -> int: ...

    def refresh(self) -> None:
        """Catch up with writes made elsewhere (a follower in another process); call it once
        per request or query, whose reads then see one state. A no-op for a writer."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self:
        """Start the store's background work, if it has any (a writer's merges, a spool's
        drainer): opening a store starts no thread."""
        ...

    def __exit__(self, *exc_info: object) -> None:
        """`close()`."""
        ...


@runtime_checkable
class SketchChanges(Protocol):
    """A reader that can tell which sketch times changed (the embedded store): answers computed
    from its sketches can be kept until a change touches them."""

    def sketch_changes(self, tier: str, since: int) -> tuple[int, tuple[tuple[int, int], ...]]:
        """The number of the last change now, and the spans [lo, hi] of sketch times of `tier`
        written, rolled up or cut by retention after change `since` (0: from the start), or
        one span of every time when the store no longer knows."""
        ...


@runtime_checkable
class TagIndex(Protocol):
    """A reader with an inverted index from tag pairs to series (the embedded store): a
    tag-filtered match costs the series it finds, not the series of the metric. Readers without
    one answer through `series_with`, `tag_keys` and `tag_values` below, from `series()`."""

    def series_with(self, metric: str, tags: Sequence[tuple[str, str]]) -> list[Series]:
        """The series of `metric` that have every (key, value) of `tags` (at least one), sorted."""
        ...

    def tag_keys(self, metric: str) -> list[str]:
        """The tag keys the series of `metric` have, sorted."""
        ...

    def tag_values(self, metric: str, key: str) -> list[str]:
        """The values tag `key` takes among the series of `metric`, sorted."""
        ...


def series_with(store: StoreReader, metric: str, tags: Sequence[tuple[str, str]]) -> list[Series]:
    """`TagIndex.series_with` of any reader (no tags: every series of `metric`)."""
    if not tags:
        return store.series(metric)
    if isinstance(store, TagIndex):
        return store.series_with(metric, tags)
    return [s for s in store.series(metric) if all(s.tag(k) == v for k, v in tags)]


def tag_keys(store: StoreReader, metric: str) -> list[str]:
    """`TagIndex.tag_keys` of any reader."""
    if isinstance(store, TagIndex):
        return store.tag_keys(metric)
    return sorted({key for s in store.series(metric) for key, _ in s.tags})


def tag_values(store: StoreReader, metric: str, key: str) -> list[str]:
    """`TagIndex.tag_values` of any reader."""
    if isinstance(store, TagIndex):
        return store.tag_values(metric, key)
    found = (s.tag(key) for s in store.series(metric))
    return sorted({value for value in found if value is not None})


class Store(StoreReader, Protocol):
    """A backend that also writes: the collector, the aggregator."""

    def write(self, samples: Samples, sketches: Sketches | None = None) -> WriteResult:
        """Store raw points and sketches; durable (written and fsync'd, or acknowledged by the
        server) on return. Concurrent callers share one fsync (group commit). The result
        counts points; a sketch's series counts against `max_series` like a point's."""
        ...

    def write_rollups(
        self,
        tier: str,
        rollups: Rollups,
        watermark_ns: int,
        rerolled: DirtyBuckets | None = None,
        sketches: Sketches | None = None,
    ) -> None:
        """Store rollup rows and merged sketches of `tier` (each replaces the stored row or
        sketch of its series and bucket) and, atomically with them, the tier's watermark (the
        time up to which raw data has been rolled up) and the clearing of the `rerolled` dirty
        buckets. Durable on return."""
        ...

    def begin_rollup(self, tier: str, end_ns: int) -> None:
        """Announce a rollup pass of `tier` up to `end_ns`: from now on a raw point before
        `end_ns` makes its bucket dirty, so a point written while the pass reads is never
        missed."""
        ...

    def apply_retention(self, now_ns: int) -> None:
        """Drop data older than each tier's retention."""
        ...
