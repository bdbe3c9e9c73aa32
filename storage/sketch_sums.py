"""Running sums over bucket rows without numpy's running sum of every row, which costs several
times a plain sum (each step waits for the last): sums over blocks or between the rows looked
at, then a running sum of those few.

`search_running` finds where a running count passes each target exactly, for whole
non-negative counts summing below 2^53 (`whole_counts`): every partial sum is then exact in
any order of addition, so the row found is the one a running sum over every row would give.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from storage.records import FloatArray, IntArray

_BLOCK = 32  # rows summed together when looking for a rank
_EXACT = 2.0**53


def whole_counts(count: NDArray[Any]) -> bool:
    """True when the counts are whole numbers, none negative, summing below 2^53."""
    if not len(count):
        return True
    if np.issubdtype(count.dtype, np.unsignedinteger):
        if float(np.iinfo(count.dtype).max) * len(count) < _EXACT:
            return True
        return float(np.sum(count, dtype=np.float64)) < _EXACT
    if float(count.min()) < 0 or not bool((count == np.floor(count)).all()):
        return False
    return float(np.sum(count, dtype=np.float64)) < _EXACT


def prefix_at(values: NDArray[Any], positions: IntArray, dtype: DTypeLike) -> NDArray[Any]:
    """`np.cumsum(values, dtype=dtype)[positions]` for sorted positions (-1 gives 0): the sums
    between consecutive positions, then a running sum of those alone."""
    out = np.zeros(len(positions), dtype)
    valid = positions >= 0  # a suffix, as positions are sorted
    at = positions[valid]
    if not len(at):
        return out
    distinct = np.ones(len(at), np.bool_)
    distinct[1:] = at[1:] != at[:-1]
    ends = at[distinct] + 1  # strictly increasing, so reduceat sums each [start, end)
    starts = np.concatenate([[0], ends[:-1]])
    sums = np.add.reduceat(values[: ends[-1]], starts, dtype=_sum_type(values, len(values)))
    out[valid] = np.cumsum(sums.astype(dtype))[np.cumsum(distinct) - 1]
    return out


def search_running(values: NDArray[Any], targets: FloatArray) -> IntArray:
    """`np.searchsorted(np.cumsum(values), targets, side="right")` for whole non-negative
    `values` (`whole_counts`): how many rows the running sum stays at or below each target."""
    n = len(values)
    if not n:
        return np.zeros(len(targets), np.int64)
    starts = np.arange(0, n, _BLOCK)
    sums = np.add.reduceat(values, starts, dtype=_sum_type(values, _BLOCK))
    running = np.cumsum(sums, dtype=np.float64)
    block = np.searchsorted(running, targets, side="right")
    found = np.full(len(targets), n, np.int64)
    inside = np.flatnonzero(block < len(starts))
    block = block[inside]
    rest = targets[inside] - np.where(block > 0, running[block - 1], 0.0)
    # The rows of each target's block, added one column at a time for every target at once; a
    # last block short of rows has zeros after them (the running sum has passed its targets).
    whole = n // _BLOCK
    rows = np.zeros((len(block), _BLOCK), values.dtype)
    full = block < whole
    rows[full] = values[: whole * _BLOCK].reshape(whole, _BLOCK)[block[full]]
    rows[~full, : n - whole * _BLOCK] = values[whole * _BLOCK :]
    added = np.zeros(len(block))
    within = np.zeros(len(block), np.int64)
    for column in rows.T:
        added += column
        within += added <= rest
    found[inside] = starts[block] + within
    return found


def _sum_type(values: NDArray[Any], rows: int) -> type[np.number[Any]]:
    """A type that adds up to `rows` of `values` exactly, narrow when it can: widening every
    code to 8 bytes costs more than the sum."""
    if np.issubdtype(values.dtype, np.unsignedinteger):
        fits = (float(np.iinfo(values.dtype).max) * rows) < 2**32
        return np.uint32 if fits else np.uint64
    return np.int64 if np.issubdtype(values.dtype, np.signedinteger) else np.float64
