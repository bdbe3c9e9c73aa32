"""Immutable records that cross package boundaries: series keys, sample batches and rollups.

Batches are columns (numpy arrays), never lists of point objects: a batch of a million points is
four arrays, and every layer (parsers, StatsD flush, store, rollups, queries) works on them whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

Tags = tuple[tuple[str, str], ...]
IntArray = NDArray[np.int64]
IndexArray = NDArray[np.int32]
FloatArray = NDArray[np.float64]

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """A metric name plus its tags, sorted by key: `http.requests{host=a,service=web}`."""

    metric: str
    tags: Tags = ()
    # Series key every dict of the hot paths; tuples do not cache their hash, so this does.
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.metric, self.tags)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Series):
            return NotImplemented
        return self._hash == other._hash and self.metric == other.metric and self.tags == other.tags

    @classmethod
    def of(cls, metric: str, tags: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> Series:
        items = tags.items() if isinstance(tags, Mapping) else tags
        return cls(metric, tuple(sorted(items)))

    def tag(self, key: str) -> str | None:
        for k, v in self.tags:
            if k == key:
                return v
        return None

    def __str__(self) -> str:
        if not self.tags:
            return self.metric
        return self.metric + "{" + ",".join(f"{k}={v}" for k, v in self.tags) + "}"


class _Indexed(Protocol):
    @property
    def series(self) -> Sequence[Series]: ...
    @property
    def index(self) -> IndexArray: ...


def merge_series(parts: Sequence[_Indexed]) -> tuple[tuple[Series, ...], IndexArray]:
    """The distinct series of `parts` in order of appearance, and every part's index rewritten
    onto them, concatenated: what joining batches of columns needs."""
    positions: dict[Series, int] = {}
    remapped = []
    for part in parts:
        mapping = np.fromiter(
            (positions.setdefault(s, len(positions)) for s in part.series),
            np.int32,
            len(part.series),
        )
        remapped.append(mapping[part.index])
    return tuple(positions), np.concatenate(remapped)


@dataclass(frozen=True, slots=True)
class Samples:
    """A batch of points as columns: point i is (series[index[i]], ts_ns[i], values[i])."""

    series: Sequence[Series]
    index: IndexArray
    ts_ns: IntArray
    values: FloatArray

    def __len__(self) -> int:
        return len(self.ts_ns)

    def take(self, rows: NDArray[np.bool_] | IntArray) -> Samples:
        """The points picked by a boolean mask or an index array, same series."""
        return Samples(self.series, self.index[rows], self.ts_ns[rows], self.values[rows])

    @classmethod
    def empty(cls) -> Samples:
        return cls((), np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64))

    @classmethod
    def from_points(cls, points: Iterable[tuple[Series, int, float]]) -> Samples:
        """Build a batch from (series, ts_ns, value) tuples; for tests and slow paths."""
        positions: dict[Series, int] = {}
        index: list[int] = []
        ts: list[int] = []
        values: list[float] = []
        for series, ts_ns, value in points:
            index.append(positions.setdefault(series, len(positions)))
            ts.append(ts_ns)
            values.append(value)
        return cls(
            tuple(positions),
            np.asarray(index, np.int32),
            np.asarray(ts, np.int64),
            np.asarray(values, np.float64),
        )

    @classmethod
    def concat(cls, batches: Sequence[Samples]) -> Samples:
        """One batch holding every point of `batches`, series de-duplicated."""
        return _concat(cls, batches)

    def points(self) -> list[tuple[Series, int, float]]:
        """The batch as (series, ts_ns, value) tuples; for tests and small results."""
        return [
            (self.series[i], int(t), float(v))
            for i, t, v in zip(
                self.index.tolist(), self.ts_ns.tolist(), self.values.tolist(), strict=True
            )
        ]


@dataclass(frozen=True, slots=True)
class Rollups:
    """Per-bucket summaries: row i covers series[index[i]] over [bucket_ns[i], + tier width).

    Rows for the same series and bucket may appear more than once (late data, partial buckets);
    `aggregator.rollups.combine` merges them: min of mins, sum of sums, and so on.
    """

    series: Sequence[Series]
    index: IndexArray
    bucket_ns: IntArray
    min: FloatArray
    max: FloatArray
    sum: FloatArray
    count: FloatArray
    last: FloatArray

    def __len__(self) -> int:
        return len(self.bucket_ns)

    def take(self, rows: NDArray[np.bool_] | IntArray) -> Rollups:
        """The rows picked by a boolean mask or an index array, same series."""
        return Rollups(
            self.series,
            self.index[rows],
            self.bucket_ns[rows],
            self.min[rows],
            self.max[rows],
            self.sum[rows],
            self.count[rows],
            self.last[rows],
        )

    @classmethod
    def empty(cls) -> Rollups:
        f = np.empty(0, np.float64)
        return cls((), np.empty(0, np.int32), np.empty(0, np.int64), f, f, f, f, f)

    @classmethod
    def concat(cls, parts: Sequence[Rollups]) -> Rollups:
        """One set of rows holding every row of `parts` in order, series de-duplicated."""
        return _concat(cls, parts)


@dataclass(frozen=True, slots=True)
class Sketches:
    """Latency sketches as rows: row i is field `keys[i]` of the sketch of series[index[i]] at
    ts_ns[i] (a flush, or a rollup bucket's start), valued `values[i]`.

    The rows of one sketch are contiguous and in key order: its header (scale, sum, min, max)
    first, then one row per non-empty bucket holding its (weighted) count. `storage.sketches`
    defines the keys and does the maths."""

    series: Sequence[Series]
    index: IndexArray
    ts_ns: IntArray
    keys: IntArray
    values: FloatArray

    def __len__(self) -> int:
        return len(self.ts_ns)

    def take(self, rows: NDArray[np.bool_] | IntArray) -> Sketches:
        """The rows picked by a boolean mask or an index array, same series; whole sketches
        only, or the result is no sketch."""
        return Sketches(
            self.series, self.index[rows], self.ts_ns[rows], self.keys[rows], self.values[rows]
        )

    @classmethod
    def empty(cls) -> Sketches:
        return cls(
            (),
            np.empty(0, np.int32),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.float64),
        )

    @classmethod
    def concat(cls, parts: Sequence[Sketches]) -> Sketches:
        """The rows of `parts` in order (each sketch stays whole), series de-duplicated."""
        return _concat(cls, parts)


_Batch = TypeVar("_Batch", Samples, Rollups, Sketches)


def _concat(cls: type[_Batch], batches: Sequence[_Batch]) -> _Batch:
    """The rows of `batches` in order, series de-duplicated: each column after `series` and
    `index` joined field by field."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return cls.empty()
    if len(batches) == 1:
        return batches[0]
    series, index = merge_series(batches)
    columns = [np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)[2:]]
    return cls(series, index, *columns)


@dataclass(frozen=True, slots=True)
class Tier:
    """One resolution of stored data: `raw` (as written) or a rollup of `width_ns` buckets."""

    name: str
    width_ns: int
    retention_ns: int

    @property
    def is_raw(self) -> bool:
        return self.name == RAW


RAW = "raw"
