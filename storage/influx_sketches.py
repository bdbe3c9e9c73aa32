"""Latency sketches in InfluxDB: one point per sketch, its buckets in one string field.

    ~sketch:<tier>:<metric>,<tags> scale=<int>i,sum=,min=,max=,buckets="<k>:<c>,<d>:<c>,..." <ts>

`buckets` holds the sketch's bucket rows in key order: the first key as it is, each later one
as its difference from the key before, each with its count (a float64 in Python's shortest
exact form, `.0` left off): `1099511628032:3,1:1,5:2.5`. One string field rather than a field
per bucket because InfluxDB keeps one point per series and time by merging their fields: a later
sketch with fewer buckets would leave the earlier one's other buckets behind, while every line
here writes the same five fields and so replaces the stored sketch whole. `storage.records`
Sketches round-trip exactly (keys int64, counts and headers float64); a sketch holding a NaN or
an infinity is left out, as InfluxDB cannot keep one in a float field.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
from collections.abc import Sequence

import numpy as np

from storage.influx_codec import ResultSeries, line_prefix
from storage.records import FloatArray, IntArray, Series, Sketches
from storage.sketches import HEADER_KEYS, SCALE_KEY, is_bucket

_LOG = logging.getLogger(__name__)

PREFIX = "~sketch:"
HEADER_FIELDS = ("scale", "sum", "min", "max")  # the fields of HEADER_KEYS, in their order
BUCKETS = "buckets"
_HEADS = len(HEADER_KEYS)
_BUCKET_TEXT = re.compile(r"-?[0-9]+:[^,:]+(?:,-?[0-9]+:[^,:]+)*")


def measurement_prefix(tier: str) -> str:
    """What the measurement of each sketch of `tier` starts with (`~sketch:raw:` for raw)."""
    return f"{PREFIX}{tier}:"


def encode(
    tier: str, sketches: Sketches, prefixes: Sequence[str | None], floor_ns: int | None = None
) -> tuple[list[str], IntArray]:
    """Line protocol of `sketches` of `tier`, one line per sketch, and the time of each line.
    `prefixes[i]` is the line prefix of the raw points of `sketches.series[i]` (None: leave its
    sketches out); sketches before `floor_ns` or holding a NaN or an infinity are left out."""
    head = line_prefix(Series(""), measurement_prefix(tier))  # the tier's part, escaped
    starts = _starts(sketches.keys)
    if not len(starts):
        return [], np.empty(0, np.int64)
    ts = sketches.ts_ns[starts]
    finite = np.logical_and.reduceat(np.isfinite(sketches.values), starts)
    if not finite.all():
        _LOG.warning("InfluxDB cannot hold NaN or infinity: %d sketches left out", (~finite).sum())
    index = sketches.index[starts]
    keep = finite & np.asarray([p is not None for p in prefixes], np.bool_)[index]
    if floor_ns is not None:
        keep &= ts >= floor_ns
    texts = bucket_texts(sketches.keys, sketches.values)
    heads = sketches.values[starts[:, None] + np.arange(_HEADS)].tolist()
    lines = []
    for j in np.flatnonzero(keep).tolist():
        scale, total, low, high = heads[j]
        lines.append(
            f"{head}{prefixes[index[j]]} scale={int(scale)}i,sum={total!r},min={low!r},"
            f'max={high!r},{BUCKETS}="{texts[j]}" {ts[j]}'
        )
    return lines, ts[keep]


def bucket_texts(keys: IntArray, values: FloatArray) -> list[str]:
    """The `buckets` text of each sketch of the rows (whole sketches, as `_starts` checks)."""
    sketch = np.cumsum(keys == SCALE_KEY) - 1
    rows = np.flatnonzero(is_bucket(keys))
    owner, bucket_keys = sketch[rows], keys[rows]
    deltas = np.diff(bucket_keys, prepend=np.int64(0))
    first = np.ones(len(rows), np.bool_)
    first[1:] = owner[1:] != owner[:-1]
    if (deltas[~first] <= 0).any():
        raise ValueError("the buckets of a sketch must be in key order, each key once")
    deltas[first] = bucket_keys[first]
    tokens = [
        f"{d}:{_count_text(c)}" for d, c in zip(deltas.tolist(), values[rows].tolist(), strict=True)
    ]
    bounds = np.searchsorted(owner, np.arange(np.count_nonzero(keys == SCALE_KEY) + 1)).tolist()
    return [",".join(tokens[a:b]) for a, b in itertools.pairwise(bounds)]


def _count_text(count: float) -> str:
    text = repr(count)
    return text[:-2] if text.endswith(".0") else text


def _starts(keys: IntArray) -> IntArray:
    """Where each sketch starts; ValueError unless the rows are whole sketches, each its four
    header rows in order and then bucket rows only."""
    starts = np.flatnonzero(keys == SCALE_KEY)
    heads = starts[:, None] + np.arange(_HEADS)
    whole = not len(keys) or (
        len(starts) > 0
        and starts[0] == 0
        and heads[-1, -1] < len(keys)
        and (keys[heads] == np.asarray(HEADER_KEYS)).all()
        and np.count_nonzero(is_bucket(keys)) == len(keys) - heads.size
    )
    if not whole:
        raise ValueError("sketch rows must be whole sketches: scale, sum, min, max, buckets")
    return starts


def decode_buckets(texts: Sequence[str]) -> tuple[IntArray, IntArray, FloatArray]:
    """The bucket rows of `buckets` texts: how many each text holds, their keys and counts.
    ValueError if a text is not one `bucket_texts` writes."""
    if not all(_BUCKET_TEXT.fullmatch(t) for t in texts if t):
        raise ValueError("a sketch's buckets are not key:count pairs")
    sizes = np.fromiter((t.count(",") + 1 if t else 0 for t in texts), np.int64, len(texts))
    joined = ",".join(t for t in texts if t)
    pieces = joined.replace(":", ",").split(",") if joined else []
    try:
        deltas = np.fromiter(map(int, pieces[0::2]), np.int64, len(pieces) // 2)
    except OverflowError as error:
        raise ValueError(f"a sketch's bucket key is out of range: {error}") from error
    counts = np.fromiter(map(float, pieces[1::2]), np.float64, len(pieces) // 2)
    # A key is a running sum within its sketch: the running sum over all of them, less that
    # before the sketch's first key. int64 sums may wrap, and the differences stay exact.
    with np.errstate(over="ignore"):
        running = np.cumsum(deltas)
        firsts = (np.cumsum(sizes) - sizes)[sizes > 0]
        keys = running - np.repeat(running[firsts] - deltas[firsts], sizes[sizes > 0])
    return sizes, keys, counts


def decode(series: tuple[Series, ...], picked: Sequence[tuple[int, ResultSeries]]) -> Sketches:
    """The sketches of the answers `picked` (each the position in `series` of its series and
    its answer, with HEADER_FIELDS and BUCKETS), in their order: the header rows of a sketch,
    then its buckets."""
    n = sum(len(r.ts_ns) for _, r in picked)
    texts = [t for _, r in picked for t in r.texts.get(BUCKETS, [""] * len(r.ts_ns))]
    sizes, keys, counts = decode_buckets(texts)
    if not n:
        return dataclasses.replace(Sketches.empty(), series=series)
    heads = np.column_stack(
        [np.concatenate([r.columns[f] for _, r in picked]) for f in HEADER_FIELDS]
    )
    ts = np.concatenate([r.ts_ns for _, r in picked])
    position = np.concatenate([np.full(len(r.ts_ns), p, np.int32) for p, r in picked])
    width = sizes + _HEADS
    at = (np.cumsum(width) - width)[:, None] + np.arange(_HEADS)
    out_keys = np.empty(int(width.sum()), np.int64)
    out_values = np.empty(len(out_keys), np.float64)
    out_keys[at], out_values[at] = np.asarray(HEADER_KEYS), heads
    rows = _HEADS * (np.repeat(np.arange(n), sizes) + 1) + np.arange(len(keys))
    out_keys[rows], out_values[rows] = keys, counts
    return Sketches(series, np.repeat(position, width), np.repeat(ts, width), out_keys, out_values)
