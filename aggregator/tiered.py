"""Reading across tiers: each rollup tier up to its watermark, its dirty buckets and the tail
after it from the finer tiers, for scalar rows and for sketches alike.

Watermark, then dirty buckets, then rows: a bucket rolled up again between two of these reads is
then taken from the finer tier or read whole, never read half-done. Rows never overlap: each
(series, bucket of the finest width read) comes from one tier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from aggregator.rollups import RowParts, rollup
from aggregator.sketch_rollups import cascade_sketches
from storage.base import StoreReader, bucket_spans
from storage.records import RAW, IntArray, Rollups, Series, Sketches, Tier
from storage.sketch_packs import PackedSketches, PackedSketchReader

_Rows = TypeVar("_Rows", Rollups, Sketches, PackedSketches)
_SeriesArg = Sequence[Series] | None


@dataclass(frozen=True, slots=True)
class _Kind(Generic[_Rows]):
    """How one kind of rows is read and put together (the parts of every tier read joined
    once, not at each tier on the way down)."""

    raw: Callable[[StoreReader, _SeriesArg, int, int, int], _Rows]  # rolled up to a width
    stored: Callable[[StoreReader, str, _SeriesArg, int, int], _Rows]
    bucket_ns: Callable[[_Rows], IntArray]
    concat: Callable[[Sequence[_Rows]], _Rows]


_SCALARS: _Kind[Rollups] = _Kind(
    lambda store, series, lo, hi, width: rollup(store.read(series, lo, hi), width),
    lambda store, tier, series, lo, hi: store.read_rollups(tier, series, lo, hi),
    lambda rows: rows.bucket_ns,
    Rollups.concat,
)
_SKETCHES: _Kind[Sketches] = _Kind(
    lambda store, series, lo, hi, width: cascade_sketches(
        store.read_sketches(RAW, series, lo, hi), width
    ),
    lambda store, tier, series, lo, hi: store.read_sketches(tier, series, lo, hi),
    lambda rows: rows.ts_ns,
    Sketches.concat,
)

_PACKED: _Kind[PackedSketches] = _Kind(
    lambda store, series, lo, hi, width: PackedSketches.of(
        _SKETCHES.raw(store, series, lo, hi, width)
    ),
    lambda store, tier, series, lo, hi: _packer(store).read_packed_sketches(tier, series, lo, hi),
    lambda packed: packed.ts_ns,
    PackedSketches.concat,
)


def read_rows(
    store: StoreReader,
    tiers: Sequence[Tier],
    tier: Tier,
    series: _SeriesArg,
    start_ns: int,
    end_ns: int,
    width_ns: int,
) -> Rollups:
    """Rollup rows covering [start, end) from `tier` and the finer tiers (module doc); raw
    points are rolled up to `width_ns`, which `tier.width_ns` divides."""
    return _SCALARS.concat(_parts(_SCALARS, store, tiers, tier, series, start_ns, end_ns, width_ns))


def read_row_parts(
    store: StoreReader,
    tiers: Sequence[Tier],
    tier: Tier,
    series: _SeriesArg,
    span_ns: tuple[int, int],
    width_ns: int,
) -> RowParts:
    """`read_rows` over [start, end) = `span_ns`, its rows in the parts the tiers give, each
    column joined only when used (`RowParts`)."""
    return RowParts(_parts(_SCALARS, store, tiers, tier, series, *span_ns, width_ns))


def read_sketches(
    store: StoreReader,
    tiers: Sequence[Tier],
    tier: Tier,
    series: _SeriesArg,
    start_ns: int,
    end_ns: int,
    width_ns: int,
) -> Sketches:
    """Sketches covering [start, end) from `tier` and the finer tiers, as `read_rows`; raw
    sketches are merged into buckets of `width_ns`."""
    parts = _parts(_SKETCHES, store, tiers, tier, series, start_ns, end_ns, width_ns)
    return _SKETCHES.concat(parts)


def read_packed_sketches(
    store: StoreReader,
    tiers: Sequence[Tier],
    tier: Tier,
    series: _SeriesArg,
    start_ns: int,
    end_ns: int,
    width_ns: int,
) -> PackedSketches:
    """The sketches `read_sketches` gives, packed (`storage.sketch_packs`), in no order, from
    a store that reads them so (`PackedSketchReader`)."""
    parts = _parts(_PACKED, store, tiers, tier, series, start_ns, end_ns, width_ns)
    return _PACKED.concat(parts)


def _parts(
    kind: _Kind[_Rows],
    store: StoreReader,
    tiers: Sequence[Tier],
    tier: Tier,
    series: _SeriesArg,
    start_ns: int,
    end_ns: int,
    width_ns: int,
) -> list[_Rows]:
    """The rows covering [start, end) from `tier` and the finer tiers (module doc), in the
    parts each tier gives, in order."""
    if tier.is_raw:
        return [kind.raw(store, series, start_ns, end_ns, width_ns)]
    watermark = store.watermark(tier.name)
    cut_ns = min(max(watermark if watermark is not None else start_ns, start_ns), end_ns)
    finer = max((t for t in tiers if t.width_ns < tier.width_ns), key=_width)
    parts = []
    if cut_ns > start_ns:
        dirty = store.dirty(tier.name).within(start_ns - start_ns % tier.width_ns, cut_ns)
        rows = kind.stored(store, tier.name, series, start_ns, cut_ns)
        buckets = dirty.for_readers()
        if len(buckets):
            rows = rows.take(~np.isin(kind.bucket_ns(rows), buckets))
            for lo, hi in bucket_spans(buckets, tier.width_ns):
                lo, hi = max(lo, start_ns), min(hi, cut_ns)
                parts += _parts(kind, store, tiers, finer, series, lo, hi, tier.width_ns)
        parts.append(rows)
    if cut_ns < end_ns:
        # Finer rows stay at this tier's width at most, so `last` still orders by bucket.
        parts += _parts(kind, store, tiers, finer, series, cut_ns, end_ns, tier.width_ns)
    return parts


def _packer(store: StoreReader) -> PackedSketchReader:
    if not isinstance(store, PackedSketchReader):
        raise TypeError(f"{type(store).__name__} does not read packed sketches")
    return store


def _width(tier: Tier) -> int:
    return tier.width_ns
