"""Reading a sketch table: the sketches of a query from every block and head run, put in their
order and de-duplicated as wholes before a bucket row is decoded, so that each row is written
once, in its place.

A run of rows (a plain block, a head part or chunk) is sketches one after another; a compact
block (`storage.sketch_blocks`) gives its sketches' fields without decoding them. Sketches are
ordered by (position in the answer, ts), stably in write order, and of the sketches of one
(series, ts) the last written wins whole, as `storage.columns.merge` has it. A packed read
(`gather_packed`) keeps the same sketches, left in the order of their sources and undecoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from storage.columns import Columns, IdArray
from storage.records import FloatArray, IndexArray, IntArray, Series, Sketches
from storage.sketch_blocks import SketchRun
from storage.sketch_packs import PackedSketches
from storage.sketches import SCALE_KEY, rows_of


@dataclass(frozen=True, slots=True)
class Source:
    """The sketches one block or run gives: compact fields (`picked`) or rows, and per sketch
    its sid, ts and rows."""

    sid: IdArray
    ts: IntArray
    sizes: IntArray
    picked: tuple[SketchRun, Columns] | None = None
    rows: tuple[Columns, IntArray] | None = None  # and where each sketch starts in them

    @classmethod
    def compact(cls, run: SketchRun, picked: Columns) -> Source:
        return cls(picked.sid, picked.ts, SketchRun.sizes(picked), picked=(run, picked))

    @classmethod
    def of_rows(cls, rows: Columns) -> Source:
        starts = np.flatnonzero(rows.cols[0] == SCALE_KEY)
        sizes = np.diff(np.append(starts, len(rows)))
        return cls(rows.sid[starts], rows.ts[starts], sizes, rows=(rows, starts))

    def pack(self, kept: NDArray[np.bool_], index: IndexArray) -> PackedSketches:
        """The `kept` sketches packed, of series positions `index` (one per sketch)."""
        if not kept.any():  # every one written again later
            return PackedSketches.empty()
        if self.picked is not None:
            run, picked = self.picked
            if bool(kept.all()):
                return run.pack(picked, index)
            return run.pack(picked.take(kept), index[kept])
        assert self.rows is not None
        rows, starts = self.rows
        lengths = self.sizes[kept]
        taken = rows.take(rows_of(starts[kept], lengths))
        index = np.repeat(index[kept], lengths)
        batch = Sketches((), index, taken.ts, taken.cols[0].astype(np.int64), taken.cols[1])
        return PackedSketches.of(batch)

    def fill(
        self, kept: NDArray[np.bool_], offset: IntArray, keys: IntArray, values: FloatArray
    ) -> None:
        """Write the `kept` sketches' rows at their `offset`s."""
        if self.picked is not None:
            run, picked = self.picked
            run.decode_into(picked.take(kept), offset, keys, values)
            return
        assert self.rows is not None
        rows, starts = self.rows
        lengths = self.sizes[kept]
        total = int(lengths.sum())
        step = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        source = np.repeat(starts[kept], lengths) + step
        target = np.repeat(offset, lengths) + step
        keys[target] = rows.cols[0][source]
        values[target] = rows.cols[1][source]


def gather(
    sources: Sequence[Source], position: NDArray[np.uint32]
) -> tuple[IdArray, IntArray, IntArray, FloatArray]:
    """Rows (position, ts, key, value) of the sketches of `sources` (in write order), sorted
    by (position[sid], ts, key), the last written of each (sid, ts) whole."""
    sources = [s for s in sources if len(s.sid)]
    if not sources:
        return np.empty(0, np.uint32), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    where, ts, sizes, order, last = _latest(sources, position)
    chosen = order[last]
    lengths = sizes[chosen]
    kept = np.zeros(len(order), np.bool_)
    kept[chosen] = True
    offset = np.empty(len(order), np.int64)
    offset[chosen] = np.cumsum(lengths) - lengths
    keys = np.empty(int(lengths.sum()), np.int64)
    values = np.empty(len(keys), np.float64)
    begin = 0
    for source in sources:
        end = begin + len(source.sid)
        mask = kept[begin:end]
        if mask.any():
            source.fill(mask, offset[begin:end][mask], keys, values)
        begin = end
    return np.repeat(where[chosen], lengths), np.repeat(ts[chosen], lengths), keys, values


def gather_packed(
    sources: Sequence[Source], position: NDArray[np.uint32], series: Sequence[Series]
) -> PackedSketches:
    """The sketches `gather` gives, packed, in no particular order: nothing is sorted or
    decoded but the per-sketch fields (`storage.sketch_packs`)."""
    sources = [s for s in sources if len(s.sid)]
    if not sources:
        return PackedSketches.empty(series)
    where, _, _, order, last = _latest(sources, position)
    kept = np.zeros(len(order), np.bool_)
    kept[order[last]] = True
    parts, begin = [], 0
    for source in sources:
        end = begin + len(source.sid)
        parts.append(source.pack(kept[begin:end], where[begin:end].astype(np.int32)))
        begin = end
    return PackedSketches.join(parts, series)


def _latest(
    sources: Sequence[Source], position: NDArray[np.uint32]
) -> tuple[NDArray[np.uint32], IntArray, IntArray, IntArray, NDArray[np.bool_]]:
    """Of every sketch of `sources`: its position, ts and rows; their order by (position, ts),
    stable, and in that order True at the last written of each (position, ts)."""
    where = position[np.concatenate([s.sid for s in sources])]
    ts = np.concatenate([s.ts for s in sources])
    sizes = np.concatenate([s.sizes for s in sources])
    order = np.lexsort((ts, where))  # stable: of twins, the last written comes last
    last = np.ones(len(order), np.bool_)
    last[:-1] = (where[order][1:] != where[order][:-1]) | (ts[order][1:] != ts[order][:-1])
    return where, ts, sizes, order, last
