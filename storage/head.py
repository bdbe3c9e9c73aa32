"""The head: rows of one tier not yet in a block, as sorted parts plus a few unsorted chunks.

Writes append small chunks; once enough rows or chunks wait they are sorted into a part, and runs of
four parts of one size are merged into one (from the maintenance thread), so a read scans a
short unsorted tail and binary-searches a handful of parts. The caller serialises mutations;
`snapshot()` hands readers immutable runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.columns import Columns, merge

SORT_ROWS = 65_536
"""Unsorted rows kept before sorting them into a part: a bounded scan for reads."""

SORT_CHUNKS = 16
"""Unsorted chunks kept at most: rollup writes are many and small, and a read scans each chunk."""

MERGE_FAN_IN = 4


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The head's runs in write order: sorted parts, then unsorted chunks."""

    parts: tuple[Columns, ...]
    chunks: tuple[Columns, ...]


class Head:
    """Rows of one tier in memory, in write order."""

    def __init__(self, width: int, sort_rows: int = SORT_ROWS, *, combine: bool = False) -> None:
        self.width = width
        self.combine = combine  # rows of one key are combined, not replaced (`merge`)
        self._sort_rows = sort_rows
        self._parts: list[Columns] = []
        self._levels: list[int] = []
        self._chunks: list[Columns] = []
        self._chunk_rows = 0
        self.rows = 0

    def append(self, chunk: Columns) -> bool:
        """Add rows; True when they completed a new sorted part (a merge may be due)."""
        if not len(chunk):
            return False
        self._chunks.append(chunk)
        self._chunk_rows += len(chunk)
        self.rows += len(chunk)
        if self._chunk_rows >= self._sort_rows or len(self._chunks) >= SORT_CHUNKS:
            self._parts.append(merge(self._chunks, self.width, combine=self.combine))
            self._levels.append(0)
            self._chunks = []
            self._chunk_rows = 0
            return True
        return False

    def snapshot(self) -> Snapshot:
        return Snapshot(tuple(self._parts), tuple(self._chunks))

    def runs(self) -> list[Columns]:
        """Every run in write order (parts are sorted, chunks are not)."""
        return [*self._parts, *self._chunks]

    def merge_candidate(self) -> tuple[int, list[Columns]] | None:
        """The first run of `MERGE_FAN_IN` parts of one level, as (position, parts)."""
        levels = self._levels
        for i in range(len(levels) - MERGE_FAN_IN + 1):
            if len(set(levels[i : i + MERGE_FAN_IN])) == 1:
                return i, self._parts[i : i + MERGE_FAN_IN]
        return None

    def replace(self, position: int, merged: Columns) -> None:
        """Put `merged` in place of the parts `merge_candidate` returned at `position`.

        Only appends happen between the two calls, so the parts are still there."""
        level = self._levels[position] + 1
        self._parts[position : position + MERGE_FAN_IN] = [merged]
        self._levels[position : position + MERGE_FAN_IN] = [level]
