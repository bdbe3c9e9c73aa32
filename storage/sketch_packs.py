"""Sketches packed as a compact sketch block has them: per-sketch fields, and the bucket rows
of every sketch one after the other as key deltas and counts.

A query that reads thousands of sketches only to rank their buckets needs neither a sid and ts
on every row nor its header rows, nor even most bucket keys decoded: `storage.sketch_quantiles`
works on this form, read from a compact block as a few slices per series
(`storage.sketch_blocks.SketchRun.pack`). Sketches come in no particular order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from storage import sketches
from storage.records import FloatArray, IndexArray, IntArray, Series, Sketches, merge_series
from storage.sketch_sums import prefix_at


@dataclass(frozen=True, slots=True)
class PackedSketches:
    """Sketch i is of series[index[i]] at ts_ns[i], its header fields the i-th of scale, total
    (the sum of its values), low (min) and high (max), and its bucket rows are rows
    bounds[i]:bounds[i + 1] of `key_delta` (its key minus the previous row's, 0 on a sketch's
    first, whose key is first_key[i]) and `count` (each an integer or float array)."""

    series: Sequence[Series]
    index: IndexArray
    ts_ns: IntArray
    scale: IntArray
    total: FloatArray
    low: FloatArray
    high: FloatArray
    first_key: IntArray
    bounds: IntArray
    key_delta: NDArray[Any]
    count: NDArray[Any]

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def lengths(self) -> IntArray:
        """How many bucket rows each sketch has."""
        return np.diff(self.bounds)

    def key_spans(self) -> IntArray:
        """Of each sketch, its last bucket's key minus its first (0 with no buckets)."""
        ends = prefix_at(self.key_delta, self.bounds[1:] - 1, np.int64)
        return np.diff(ends, prepend=np.int64(0))

    def keys(
        self,
        plus: IntArray | None = None,
        spans: IntArray | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> IntArray:
        """The key of every bucket row of sketches start:stop (all by default), plus its
        sketch's `plus` if given (`spans`: `key_spans()`, if known): one running sum of the key
        deltas, each sketch's first delta set to the step from the last key before it."""
        stop = len(self) if stop is None else stop
        begin = int(self.bounds[start])
        some = np.flatnonzero(self.lengths[start:stop] > 0) + start
        steps = self.key_delta[begin : self.bounds[stop]].astype(np.int64)
        if len(some):
            first = self.first_key[some] + (0 if plus is None else plus[some])
            last = first + (self.key_spans() if spans is None else spans)[some]
            steps[self.bounds[some] - begin] = first - np.concatenate([[0], last[:-1]])
        np.cumsum(steps, out=steps)  # int64 wraps, differences hold
        return steps

    def take(self, kept: NDArray[np.bool_]) -> PackedSketches:
        """The `kept` sketches, whole."""
        lengths = self.lengths[kept]
        rows = sketches.rows_of(self.bounds[:-1][kept], lengths)
        per_sketch = {name: getattr(self, name)[kept] for name in _PER_SKETCH}
        return replace(
            self,
            **per_sketch,
            bounds=bounds_of(lengths),
            key_delta=self.key_delta[rows],
            count=self.count[rows],
        )

    @classmethod
    def empty(cls, series: Sequence[Series] = ()) -> PackedSketches:
        no_ints, no_floats = np.empty(0, np.int64), np.empty(0, np.float64)
        return cls(
            series,
            np.empty(0, np.int32),
            *(no_ints, no_ints, no_floats, no_floats, no_floats, no_ints),
            np.zeros(1, np.int64),
            no_ints,
            no_floats,
        )

    @classmethod
    def of(cls, rows: Sketches) -> PackedSketches:
        """The sketches of rows (each its header rows, then its bucket rows in key order)."""
        starts = np.flatnonzero(rows.keys == sketches.SCALE_KEY)
        if not len(starts):
            return cls.empty(rows.series)
        bucket = np.flatnonzero(sketches.is_bucket(rows.keys))
        begins = np.searchsorted(bucket, starts)
        bounds = np.append(begins, len(bucket)).astype(np.int64)
        keys = rows.keys[bucket]
        delta = np.zeros(len(keys), np.int64)
        delta[1:] = keys[1:] - keys[:-1]
        some = np.diff(bounds) > 0
        delta[begins[some]] = 0
        first_key = np.zeros(len(starts), np.int64)
        first_key[some] = keys[begins[some]]
        header = rows.values
        return cls(
            rows.series,
            rows.index[starts],
            rows.ts_ns[starts],
            header[starts].astype(np.int64),
            header[starts + 1],
            header[starts + 2],
            header[starts + 3],
            first_key,
            bounds,
            delta,
            rows.values[bucket],
        )

    @classmethod
    def concat(cls, parts: Sequence[PackedSketches]) -> PackedSketches:
        """The sketches of `parts` in order, series de-duplicated."""
        parts = [p for p in parts if len(p)]
        if len(parts) <= 1:
            return parts[0] if parts else cls.empty()
        series, index = merge_series(parts)
        return replace(cls.join(parts, series), index=index)

    @classmethod
    def join(cls, parts: Sequence[PackedSketches], series: Sequence[Series]) -> PackedSketches:
        """The sketches of `parts` in order, whose index is already into `series`, their bucket
        columns in arrays of their own."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(series)
        if len(parts) == 1:  # its bucket columns copied all the same: no view of a block stays
            part = parts[0]
            return replace(
                part, series=series, key_delta=part.key_delta.copy(), count=part.count.copy()
            )
        per_sketch = {
            name: np.concatenate([getattr(p, name) for p in parts]) for name in _PER_SKETCH
        }
        return replace(
            parts[0],
            **per_sketch,
            series=series,
            bounds=bounds_of(np.concatenate([p.lengths for p in parts])),
            key_delta=np.concatenate([p.key_delta for p in parts]),
            count=np.concatenate([p.count for p in parts]),
        )

    def rows(self) -> Sketches:
        """The sketches as rows, sorted by (index, ts_ns, key)."""
        order = np.lexsort((self.ts_ns, self.index))
        lengths = self.lengths[order]
        picked = sketches.rows_of(self.bounds[:-1][order], lengths)
        headers = (self.scale, self.total, self.low, self.high)
        number, keys, values = sketches.assemble(
            np.arange(len(order)),
            tuple(np.asarray(h, np.float64)[order] for h in headers),  # type: ignore[arg-type]
            np.repeat(np.arange(len(order)), lengths),
            self.keys()[picked],
            np.asarray(self.count[picked], np.float64),
        )
        return Sketches(
            self.series, self.index[order][number], self.ts_ns[order][number], keys, values
        )


@runtime_checkable
class PackedSketchReader(Protocol):
    """A reader that gives sketches packed as they are at rest (the embedded store), without
    decoding them into rows first."""

    def read_packed_sketches(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> PackedSketches:
        """`StoreReader.read_sketches`'s sketches, packed, in no particular order."""
        ...


_PER_SKETCH = ("index", "ts_ns", "scale", "total", "low", "high", "first_key")


def bounds_of(lengths: IntArray) -> IntArray:
    """Bucket row bounds of sketches of `lengths` rows one after the other."""
    bounds = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=bounds[1:])
    return bounds
