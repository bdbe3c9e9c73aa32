"""What the sketch tests share: values reaching every corner of float64 (zeros, subnormals,
the largest finite values, exact powers of two, repeats), integer weights (so a weighted
sketch is the values repeated, and counts add exactly), and sketches as rows to compare."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st

from storage import sketches
from storage.records import FloatArray, IntArray, Series, Sketches

TINY = 5e-324
MIN_NORMAL = 2.2250738585072014e-308
HUGE = 1.7976931348623157e308
EDGES = (
    0.0,
    -0.0,
    TINY,
    -TINY,
    MIN_NORMAL,
    float(np.nextafter(MIN_NORMAL, 0.0)),  # the largest subnormal
    HUGE,
    -HUGE,
    1.0,
    -1.0,
    2.0,
    0.5,
    3.0,
    1024.0,
    1e-200,
    1e200,
    1.4e154,  # the square overflows: a harmonic middle 2LU/(L+U) taken literally is inf
    1e-160,  # ... or underflows to 0
)

finite = st.floats(allow_nan=False, allow_infinity=False)
any_value = st.one_of(finite, st.sampled_from(EDGES), st.integers(-(10**6), 10**6).map(float))
scales = st.integers(-4, 20)
weights = st.integers(1, 5)


@st.composite
def value_lists(
    draw: st.DrawFn, values: st.SearchStrategy[float] = any_value, max_size: int = 25
) -> list[float]:
    """Finite values, some of them repeated (a latency seen many times is the usual case)."""
    distinct = draw(st.lists(values, min_size=1, max_size=max_size))
    repeats = draw(st.lists(st.integers(0, len(distinct) - 1), max_size=max_size // 2))
    return distinct + [distinct[i] for i in repeats]


@st.composite
def weighted(
    draw: st.DrawFn, values: st.SearchStrategy[float] = any_value, max_size: int = 25
) -> tuple[list[float], list[int]]:
    """Values and an integer weight for each."""
    drawn = draw(value_lists(values, max_size))
    return drawn, draw(st.lists(weights, min_size=len(drawn), max_size=len(drawn)))


def build_one(
    values: Sequence[float], weights: Sequence[float] | None = None, scale: int = 6
) -> tuple[IntArray, FloatArray]:
    """(keys, values) of one sketch of `values`."""
    v = np.asarray(values, np.float64)
    w = np.ones(len(v)) if weights is None else np.asarray(weights, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # huge values sum to inf (or nan)
        _, keys, out = sketches.build(np.zeros(len(v), np.int64), v, w, scale)
    return keys, out


def sketch_batch(
    entries: Sequence[tuple[Series, int, Sequence[float]]], scale: int = sketches.STATSD_SCALE
) -> Sketches:
    """One sketch per (series, ts, values) entry, in the order given, as a store write takes
    them (each value counted once)."""
    series = tuple(dict.fromkeys(e[0] for e in entries))
    group = np.concatenate([np.full(len(e[2]), i, np.int64) for i, e in enumerate(entries)])
    values = np.concatenate([np.asarray(e[2], np.float64) for e in entries])
    label, keys, out = sketches.build(group, values, np.ones(len(values)), scale)
    index = np.array([series.index(e[0]) for e in entries], np.int32)[label]
    ts = np.array([e[1] for e in entries], np.int64)[label]
    return Sketches(series, index, ts, keys, out)


SketchRow = tuple[str, int, int, float]


def rows_of(batch: Sketches) -> list[SketchRow]:
    """The rows of `batch` by (series, ts, key), in the order they come: a read's must be."""
    return [
        (str(batch.series[i]), t, k, v)
        for i, t, k, v in zip(
            batch.index.tolist(),
            batch.ts_ns.tolist(),
            batch.keys.tolist(),
            batch.values.tolist(),
            strict=True,
        )
    ]


def merged_rows(batch: Sketches, width_ns: int) -> list[SketchRow]:
    """The sketches of `batch` merged per (series, bucket of `width_ns`), as rows by
    (series, bucket, key): what a rollup tier must hold for them."""
    major, minor, keys, values = sketches.merge_by(
        batch.index.astype(np.int64), batch.ts_ns - batch.ts_ns % width_ns, batch.keys, batch.values
    )
    merged = Sketches(batch.series, major.astype(np.int32), minor, keys, values)
    return sorted(rows_of(merged), key=lambda r: (r[0], r[1]))
