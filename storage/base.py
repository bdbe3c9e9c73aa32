"""The `Store` protocol: what the collector, the aggregator and the query API need of a backend.

A backend keeps raw samples and rollup rows per tier. Every method is synchronous and may block:
async callers go through `asyncio.to_thread` (or the backend's own executor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from storage.records import Rollups, Samples, Series


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write kept: points stored, and points refused because their series was new and
    the store already held `max_series` series."""

    accepted: int
    refused_points: int = 0
    refused_series: int = 0


class Store(Protocol):
    def write(self, samples: Samples) -> WriteResult:
        """Store raw points; durable (written and fsync'd, or acknowledged by the server) on
        return. Concurrent callers share one fsync (group commit)."""
        ...

    def write_rollups(self, tier: str, rollups: Rollups, watermark_ns: int) -> None:
        """Store rollup rows of `tier` and, atomically with them, the tier's watermark: the
        time up to which raw data has been rolled up. Durable on return."""
        ...

    def watermark(self, tier: str) -> int | None:
        """The last watermark written for `tier`, or None if it was never rolled up."""
        ...

    def read(self, series: Sequence[Series] | None, start_ns: int, end_ns: int) -> Samples:
        """Raw points with start_ns <= ts < end_ns of `series` (None: every series).

        The result's `series` is the given sequence (or every series that has points); points
        are sorted by (index, ts_ns), one per timestamp (the last written wins)."""
        ...

    def read_rollups(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Rollups:
        """Rollup rows of `tier` with start_ns <= bucket_ns < end_ns, combined so that each
        (series, bucket) appears once, sorted by (index, bucket_ns)."""
        ...

    def metrics(self, pattern: str = "*") -> list[str]:
        """Metric names matching the glob `pattern`, sorted."""
        ...

    def series(self, metric: str | None = None) -> list[Series]:
        """Every series of `metric` (None: of every metric), sorted."""
        ...

    def series_count(self) -> int: ...

    def apply_retention(self, now_ns: int) -> None:
        """Drop data older than each tier's retention."""
        ...

    def close(self) -> None: ...
