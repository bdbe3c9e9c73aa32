"""Compact sketch blocks: a sketch table's block as per-sketch arrays and narrow bucket rows.

A plain block spends 28 bytes on every row (sid, ts, key, value), and a sketch repeats its sid
and ts on its 4 header rows and every bucket row: a StatsD flush sketch of 250 buckets costs
7 KB at rest. Here a block directory holds, as memmapped `.npy` files:

    per sketch (sorted by sid, ts):  sid, ts, start (where its buckets start; one entry more
                                     than there are sketches, so sketch i has the bucket rows
                                     start[i]:start[i + 1]), scale, sum, min, max (each in the
                                     narrowest of int8..int32 / float32 / float64 that gives
                                     every value back bit for bit) and first_key
    per bucket row:                  key_delta (the key minus the previous bucket's key of the
                                     sketch, 0 on its first) and count

A bucket column is stored as codes of the unsigned type (uint8, uint16, uint32) that makes it
smallest; its largest code is an escape, whose value is in `<name>_overflow` at the row listed
in the sorted `<name>_rows` — or as the values themselves when that is smaller (a rollup tier of
fractional counts). Key deltas are mostly 1 to 3 and a flush's counts small integers, so most
bucket rows take 2 bytes: a flush sketch of 100 to 1000 values about 0.2 to 0.6 KB.

A read selects sketches by (sid, ts) with the binary searches of `select_sorted` on the
per-sketch arrays, then gathers and decodes only their bucket rows, all vectorised: the cost
follows the sketches returned, and nothing decoded stays resident. A packed read (`pack`)
decodes nothing: it slices the bucket columns of the sketches picked, one slice per series, as
a block keeps each series' sketches together. Rows that do not have this shape (a group of a
(sid, ts) not starting with the four header keys, a key that is not an integer below 2^53) are
not encoded (`encode` gives None) and their block stays plain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from storage.columns import SKETCH_WIDTH, Columns, IdArray, select_sorted
from storage.records import FloatArray, IndexArray, IntArray
from storage.sketch_packs import PackedSketches, bounds_of
from storage.sketches import HEADER_KEYS

Arrays = dict[str, NDArray[Any]]

HEADER_FIELDS = ("scale", "sum", "min", "max")
BUCKET_COLUMNS = ("key_delta", "count")
FILES = (
    "sid",
    "ts",
    "start",
    *HEADER_FIELDS,
    "first_key",
    *(f"{c}{part}" for c in BUCKET_COLUMNS for part in ("", "_rows", "_overflow")),
)
MARKER = "start.npy"  # only a compact block has it

_HEADERS = len(HEADER_KEYS)
_EXACT_INT = 2**53  # integer keys below this are exact as float64
_CODES = (np.uint8, np.uint16, np.uint32)
_NARROW_INTS = (np.int8, np.int16, np.int32)


def is_compact(directory: Path) -> bool:
    return (directory / MARKER).exists()


def encode(rows: Columns) -> Arrays | None:
    """The arrays of the compact block of sorted sketch rows, one whole sketch per (sid, ts)
    (`storage.columns.merge`'s output); None if some (sid, ts) is not a sketch of that shape."""
    sid, ts = rows.sid, rows.ts
    keys, values = (np.asarray(c, np.float64) for c in rows.cols)
    total = len(keys)
    if not total:
        return None
    change = np.ones(total, np.bool_)
    change[1:] = (sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1])
    first = np.flatnonzero(change)
    lengths = np.diff(np.append(first, total)) - _HEADERS
    if bool((lengths < 0).any()):
        return None
    header = first[:, None] + np.arange(_HEADERS)
    if not bool((keys[header] == np.asarray(HEADER_KEYS, np.float64)).all()):
        return None
    is_bucket = np.ones(total, np.bool_)
    is_bucket[header.ravel()] = False
    bucket_keys = keys[is_bucket]
    if not bool((np.abs(bucket_keys) < _EXACT_INT).all()):  # NaN fails too
        return None
    ints = bucket_keys.astype(np.int64)
    if not bool(_same_bits(ints.astype(np.float64), bucket_keys).all()):  # fractions, -0.0
        return None
    start = np.zeros(len(first) + 1, np.int64)
    np.cumsum(lengths, out=start[1:])
    has_buckets = start[:-1][lengths > 0]
    first_key = np.zeros(len(first), np.int64)
    first_key[lengths > 0] = ints[has_buckets]
    delta = np.empty(len(ints), np.int64)
    delta[1:] = ints[1:] - ints[:-1]
    delta[has_buckets] = 0
    arrays: Arrays = {
        "sid": sid[first],
        "ts": ts[first],
        "start": start.astype(_row_type(len(ints))),
        "first_key": first_key,
    }
    for i, name in enumerate(HEADER_FIELDS):
        arrays[name] = _narrowest(values[header[:, i]])
    arrays |= _escaped("key_delta", delta)
    arrays |= _escaped("count", values[is_bucket])
    return arrays


def load(directory: Path) -> SketchRun:
    """The compact block in `directory`, memmapped."""
    return SketchRun({n: np.load(directory / f"{n}.npy", mmap_mode="r") for n in FILES})


class SketchRun:
    """A compact block's sketches, read lazily: `select` decodes only the sketches it picks."""

    __slots__ = ("_arrays", "_index", "rows")

    def __init__(self, arrays: Mapping[str, NDArray[Any]]) -> None:
        self._arrays = dict(arrays)
        start = self._arrays["start"]
        # Per-sketch fields as the columns of a run sorted by (sid, ts): `select_sorted` finds
        # the sketches of a query and gathers just their fields.
        fields = (start[:-1], start[1:], *(self._arrays[f] for f in HEADER_FIELDS))
        self._index = Columns(
            self._arrays["sid"], self._arrays["ts"], (*fields, self._arrays["first_key"])
        )
        self.rows = _HEADERS * len(self._index) + int(start[-1])

    def __len__(self) -> int:
        return self.rows

    def keys(self) -> Columns:
        """The (sid, ts) of each sketch, no columns: which series have data when."""
        return Columns(self._index.sid, self._index.ts, ())

    def select(self, sids: IdArray | None, start_ns: int, end_ns: int) -> Columns:
        """The rows of the sketches of the sorted `sids` (None: any) in [start_ns, end_ns), as
        `select_sorted` gives them from the plain rows."""
        return self._decode(self.pick(sids, start_ns, end_ns))

    def pick(self, sids: IdArray | None, start_ns: int, end_ns: int) -> Columns:
        """The per-sketch fields of the sketches `select` gives, nothing decoded yet: sid and
        ts of each, and `sizes` tells its rows."""
        return select_sorted(self._index, sids, start_ns, end_ns)

    def decoded(self) -> Columns:
        """Every row of the block (compaction; its size is bounded by the merge's)."""
        return self._decode(self._index)

    def _decode(self, picked: Columns) -> Columns:
        """The rows of the sketches whose per-sketch fields are `picked`, one after another."""
        if not len(picked):
            return Columns.empty(SKETCH_WIDTH)
        sizes = self.sizes(picked)
        offset = np.cumsum(sizes) - sizes
        keys = np.empty(int(offset[-1] + sizes[-1]), np.float64)
        values = np.empty(len(keys), np.float64)
        self.decode_into(picked, offset, keys, values)
        return Columns(np.repeat(picked.sid, sizes), np.repeat(picked.ts, sizes), (keys, values))

    @staticmethod
    def sizes(picked: Columns) -> IntArray:
        """The rows of each picked sketch: its header rows and its bucket rows."""
        lo, hi = picked.cols[:2]
        return np.asarray(hi, np.int64) - np.asarray(lo, np.int64) + _HEADERS

    def decode_into(
        self, picked: Columns, offset: IntArray, keys: NDArray[Any], values: FloatArray
    ) -> None:
        """Write the rows of each picked sketch at its `offset` in `keys` and `values`: its
        header rows, then its bucket rows, gathered from the block's arrays without a Python
        loop."""
        if not len(picked):
            return
        lo, hi, *header, first_key = picked.cols
        begin: IntArray = np.asarray(lo, np.int64)
        lengths: IntArray = np.asarray(hi, np.int64) - begin
        before = np.cumsum(lengths) - lengths  # each sketch's first bucket among those picked
        buckets = int(before[-1] + lengths[-1])
        rows = np.repeat(begin - before, lengths) + np.arange(buckets)  # bucket rows, in the block
        delta = self._column("key_delta", rows)
        running = np.concatenate([[0], np.cumsum(delta)])  # int64 wraps, differences hold
        bucket_keys = np.repeat(np.asarray(first_key, np.int64) - running[before], lengths)
        bucket_keys += running[1:]
        head = (offset[:, None] + np.arange(_HEADERS)).ravel()
        keys[head] = np.tile(np.asarray(HEADER_KEYS, np.int64), len(offset))
        values[head] = np.column_stack([np.asarray(h, np.float64) for h in header]).ravel()
        body = np.repeat(offset + _HEADERS - before, lengths) + np.arange(buckets)
        keys[body] = bucket_keys
        values[body] = self._column("count", rows)

    def pack(self, picked: Columns, index: IndexArray) -> PackedSketches:
        """The sketches whose per-sketch fields are `picked` (as `pick` gives them), of series
        positions `index`, packed: their bucket rows sliced from the block's columns, one slice
        per run of consecutive sketches (all those of a series, as the block is sorted)."""
        if not len(picked):
            return PackedSketches.empty()
        lo, hi, scale, total, low, high, first_key = (np.asarray(c) for c in picked.cols)
        begin, end = lo.astype(np.int64), hi.astype(np.int64)
        breaks = np.flatnonzero(begin[1:] != end[:-1]) + 1
        slice_lo = begin[np.concatenate([[0], breaks])]
        slice_hi = end[np.append(breaks - 1, len(end) - 1)]
        return PackedSketches(
            (),
            index,
            np.asarray(picked.ts, np.int64),
            scale.astype(np.int64),
            total.astype(np.float64),
            low.astype(np.float64),
            high.astype(np.float64),
            first_key.astype(np.int64),
            bounds_of(end - begin),
            self._slices("key_delta", slice_lo, slice_hi),
            self._slices("count", slice_lo, slice_hi),
        )

    def _slices(self, name: str, lo: IntArray, hi: IntArray) -> NDArray[Any]:
        """Bucket column `name` at the rows [lo, hi) of each slice, one slice after another."""
        codes = np.asarray(self._arrays[name])  # no memmap wrapper on each slice
        pieces = [codes[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
        # One slice (a block read whole) stays a view: `PackedSketches.join` copies it.
        joined = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        if not len(self._arrays[f"{name}_overflow"]):  # no escapes: the codes are the values
            return joined
        offsets = bounds_of(hi - lo)

        def block_rows(at: IntArray) -> IntArray:
            piece = np.searchsorted(offsets, at, "right") - 1
            rows: IntArray = lo[piece] + at - offsets[piece]
            return rows

        return self._widened(name, joined, block_rows)

    def _column(self, name: str, rows: IntArray) -> NDArray[Any]:
        """Bucket column `name` at `rows`: codes widened, escapes replaced by their values."""
        return self._widened(name, self._arrays[name][rows], rows.__getitem__)

    def _widened(
        self, name: str, codes: NDArray[Any], block_rows: Callable[[IntArray], IntArray]
    ) -> NDArray[Any]:
        """Codes of bucket column `name` as its values (`block_rows` tells the block row of
        codes at some positions): widened if escapes are possible, escapes replaced."""
        overflow = self._arrays[f"{name}_overflow"]
        if codes.dtype == overflow.dtype:
            return np.asarray(codes)
        out = codes.astype(overflow.dtype)
        escaped = np.flatnonzero(codes == np.iinfo(codes.dtype).max)
        if len(escaped):
            listed = self._arrays[f"{name}_rows"]
            # The needle in the memmap's own dtype, or searchsorted would convert the memmap.
            rows = block_rows(escaped).astype(listed.dtype)
            out[escaped] = overflow[np.searchsorted(listed, rows)]
        return out


def _escaped(name: str, values: NDArray[Any]) -> Arrays:
    """`values` (int64 or float64) in as few bytes as the codes of `_CODES` with an escape (the
    largest code) and overflow arrays, or the values themselves, allow."""
    row_type = _row_type(len(values))
    best: Arrays = {
        name: values,
        f"{name}_rows": np.empty(0, row_type),
        f"{name}_overflow": np.empty(0, values.dtype),
    }
    best_bytes = values.nbytes
    for code_type in _CODES:
        escape = np.iinfo(code_type).max
        fits = (values >= 0) & (values < escape)  # NaN does not
        codes = np.where(fits, values, escape).astype(code_type)
        codes[~_same_bits(codes.astype(values.dtype), values)] = escape  # fractions, -0.0
        out = np.flatnonzero(codes == escape)
        size = codes.nbytes + len(out) * (values.itemsize + np.dtype(row_type).itemsize)
        if size < best_bytes:
            best_bytes = size
            best = {
                name: codes,
                f"{name}_rows": out.astype(row_type),
                f"{name}_overflow": values[out],
            }
    return best


def _narrowest(values: FloatArray) -> NDArray[Any]:
    """`values` in the narrowest type that gives each back bit for bit (a scale is an int8)."""
    for int_type in _NARROW_INTS:
        info = np.iinfo(int_type)
        if bool(((values >= info.min) & (values <= info.max)).all()):  # NaN is not
            narrow = values.astype(int_type)
            if bool(_same_bits(narrow.astype(np.float64), values).all()):
                return narrow
    with np.errstate(over="ignore"):
        single = values.astype(np.float32)
    if bool(_same_bits(single.astype(np.float64), values).all()):
        return single
    return values


def _same_bits(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.bool_]:
    """Element-wise equality of two 8-byte arrays bit for bit (NaN payloads, -0.0)."""
    same: NDArray[np.bool_] = a.view(np.uint64) == b.view(np.uint64)
    return same


def _row_type(rows: int) -> type[np.unsignedinteger[Any]]:
    """The type of row numbers up to `rows` (inclusive)."""
    return np.uint32 if rows < 2**32 else np.uint64
