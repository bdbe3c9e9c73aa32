"""Which series have rows in a range, in the embedded store, without reading the rows: binary
searches in each sorted run (blocks, sorted head parts) per series asked for, and a scan of the
short unsorted head chunks (`StoreReader.series_with_data`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from storage.base import in_order
from storage.blocks import Block
from storage.columns import Columns, IdArray, has_rows_sorted, select_unsorted
from storage.head import Snapshot
from storage.records import Series
from storage.series_index import SeriesIndex


class Scope(Protocol):
    """What a read looks at (`storage.embedded_view`'s scope of a read)."""

    @property
    def start_ns(self) -> int: ...
    @property
    def blocks(self) -> Sequence[Block]: ...
    @property
    def heads(self) -> Sequence[Snapshot]: ...
    @property
    def sids(self) -> IdArray | None:
        """Sorted; None: every series."""

    @property
    def member(self) -> NDArray[np.bool_] | None:
        """A mask of `sids`; None: any id."""


def present_ids(scope: Scope, known: int, end_ns: int) -> IdArray:
    """The ids of the scope's series (None: of the `known` ids) with a row from its start to
    `end_ns` in its blocks or heads, sorted. Each run is searched only for the ids not yet
    found, newest runs first: most series that have data have it in the recent ones."""
    start_ns = scope.start_ns
    unsorted = [select_unsorted(c, scope.member, start_ns, end_ns).sid for h in scope.heads
                for c in h.chunks]  # fmt: skip
    found = np.unique(np.concatenate([np.empty(0, np.uint32), *unsorted]))
    pending = np.arange(known, dtype=np.uint32) if scope.sids is None else scope.sids
    pending = np.setdiff1d(pending, found, assume_unique=True)
    runs: list[Columns] = []  # oldest first: blocks, then the heads' sorted parts
    for block in scope.blocks:
        assert isinstance(block.rows, Columns), "a sketch table has no presence to ask"
        runs.append(block.rows)
    runs += [part for head in scope.heads for part in head.parts]
    hits = [found]
    for run in reversed(runs):
        if not len(pending):
            break
        hit = has_rows_sorted(run, pending, start_ns, end_ns)
        hits.append(pending[hit])
        pending = pending[~hit]
    return np.sort(np.concatenate(hits)).astype(np.uint32)


def series_of(index: SeriesIndex, series: Sequence[Series] | None, ids: IdArray) -> list[Series]:
    """The series of `ids`: those of `series` among them, in its order (None: all, sorted)."""
    if series is None:
        return in_order({index.key(sid) for sid in ids.tolist()}, None)
    present = np.isin(index.lookup(tuple(series)), ids)
    return in_order({s for s, p in zip(series, present.tolist(), strict=True) if p}, series)
