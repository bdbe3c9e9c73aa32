"""Whole line-protocol bodies' series, cached by shape: a repeated body pays one lookup.

Agents send the same series in the same order at every interval, so a body's series and each
point's position among them are cached by the exact key and field-name sequence, from the
second sighting of a shape on (a flood of new series, every body a new shape, does not fill the
cache); oldest evicted. Below that, each series is cached by its field name and raw
`measurement,tags` bytes: a fleet whose bodies never repeat (every agent its own series) pays
two dict lookups for a series seen before instead of parsing its key, at about 100 bytes a
series (the Series itself is the store's).
"""

from __future__ import annotations

import numpy as np

from collector.errors import ParseError
from collector.influx_tokens import MAX_KEY_BYTES, build_key, field_name
from storage.records import IndexArray, IntArray, Series

_SHAPES: dict[bytes, tuple[tuple[Series, ...], IndexArray]] = {}
_SHAPES_MAX = 64
_SEEN_SHAPES: dict[int, None] = {}  # shapes seen once, by hash: cached when seen again
_SEEN_SHAPES_MAX = 4096
# Series by field name, then raw key; cleared whole past _SERIES_MAX series (a flood of new
# series beyond twice the default --max-series).
_SERIES: dict[bytes, dict[bytes, Series]] = {}
_SERIES_MAX = 2_000_000
_SERIES_COUNT = 0
_NOTHING: dict[bytes, Series] = {}


def body_shape(
    keys: list[bytes], names: list[bytes], per_line: IntArray | None
) -> tuple[tuple[Series, ...], IndexArray] | None:
    """The series of a body's points and each point's position among them; None when a key
    or field name is bad. Agents send the same series in the same order at every interval, so
    shapes are cached by the exact key and name sequence: a repeated body pays one lookup
    instead of a dict operation per line."""
    # No key or name holds a newline, and the counts fix where each section ends.
    blob = b"\n".join(
        [
            b"%d %d" % (len(keys), len(names)),
            *keys,
            *names,
            b"" if per_line is None else per_line.tobytes(),
        ]
    )
    cached = _SHAPES.get(blob)
    if cached is not None:
        return cached
    key_positions = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    name_positions = {name: i for i, name in enumerate(dict.fromkeys(names))}
    if max(map(len, key_positions)) + max(map(len, name_positions)) + 4 > MAX_KEY_BYTES:
        return None
    distinct_keys, distinct_names = list(key_positions), list(name_positions)
    # Series of point i: (key of its line, its field name), coded as one integer.
    key_ids = np.fromiter(map(key_positions.__getitem__, keys), np.int64, len(keys))
    name_ids = np.fromiter(map(name_positions.__getitem__, names), np.int64, len(names))
    if per_line is not None:
        key_ids = np.repeat(key_ids, per_line)
    names_count = len(distinct_names)
    series_codes, codes_index = _distinct(
        key_ids * names_count + name_ids, len(distinct_keys) * names_count
    )
    try:
        series = _series_of(distinct_keys, distinct_names, series_codes.tolist())
    except ParseError:
        return None
    index = codes_index.astype(np.int32)
    index.setflags(write=False)  # shared by every body of this shape
    # Kept from its second body on: a flood of new series (every body a new shape) would fill
    # the cache with series no later body repeats, and keep them alive.
    fingerprint = hash(blob)
    if fingerprint not in _SEEN_SHAPES:
        if len(_SEEN_SHAPES) >= _SEEN_SHAPES_MAX:
            del _SEEN_SHAPES[next(iter(_SEEN_SHAPES))]
        _SEEN_SHAPES[fingerprint] = None
        return series, index
    if len(_SHAPES) >= _SHAPES_MAX:
        del _SHAPES[next(iter(_SHAPES))]
    _SHAPES[blob] = series, index
    return series, index


def _series_of(keys: list[bytes], names: list[bytes], codes: list[int]) -> tuple[Series, ...]:
    """The series of each code (key position times len(names) plus name position), from the
    cache or parsed (ParseError for a bad key or name)."""
    width = len(names)
    if width == 1:  # one field name: one lookup per key, in C
        found = list(map(_SERIES.get(names[0], _NOTHING).get, keys))
    else:
        found = [_SERIES.get(names[c % width], _NOTHING).get(keys[c // width]) for c in codes]
    if None in found:
        decoded: dict[int, str] = {}  # each field name checked once a body
        for i, code in enumerate(codes):
            if found[i] is None:
                n = code % width
                if n not in decoded:
                    decoded[n] = field_name(names[n], names[n])
                found[i] = _parsed(keys[code // width], names[n], decoded[n])
    return tuple(found)  # type: ignore[arg-type]  # no None is left


def _parsed(key: bytes, raw_name: bytes, name: str) -> Series:
    series = build_key(key, key).series_of(name)
    by_key = _SERIES.get(raw_name)
    if by_key is None:
        by_key = _SERIES[raw_name] = {}
    by_key[key] = series
    global _SERIES_COUNT
    _SERIES_COUNT += 1
    if _SERIES_COUNT > _SERIES_MAX:
        _SERIES.clear()
        _SERIES_COUNT = 0
    return series


def _distinct(codes: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """The distinct codes (all below `size`), and each code's position among them."""
    if size > 4 * len(codes) + 1024:
        distinct, index = np.unique(codes, return_inverse=True)
        return distinct, index
    # Few possible codes: a table instead of a sort.
    present = np.zeros(size, np.bool_)
    present[codes] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[codes]
