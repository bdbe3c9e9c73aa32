"""The sketch maths against exact references: bucket bounds from 60-digit logarithms, quantiles
from numpy's order statistics with the error bound proved below, summaries from exact sums.

Why the quantile bound holds: a bucket (L, U] with U = bL is estimated by its harmonic middle
m = 2LU / (L + U), and |m - v| <= r |v| for every v in it, r = (b - 1) / (b + 1) (the worst
cases are v = L and v = U). A quantile at rank h = q (n - 1) interpolates the estimates of the
order statistics x_lo, x_hi (lo = floor(h), hi = lo + 1) with f = h - lo, so it is off from
(1 - f) x_lo + f x_hi by at most r ((1 - f) |x_lo| + f |x_hi|); clamping to the sketch's exact
min and max only moves it closer. Floats add rounding: a relative 1e-12, and a few subnormal
units where the real middle is below the smallest float."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from storage import sketches
from tests.storage.sketch_cases import (
    EDGES,
    HUGE,
    MIN_NORMAL,
    TINY,
    any_value,
    build_one,
    scales,
    value_lists,
    weighted,
)

RELATIVE_SLACK = Fraction(1, 10**12)
ABSOLUTE_SLACK = Fraction(2) ** -1070  # 16 units of the smallest subnormal
QS = st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999, 1.0]), st.floats(0.0, 1.0))

magnitudes = st.one_of(
    st.floats(min_value=TINY, allow_infinity=False),
    st.sampled_from([abs(v) for v in EDGES if v != 0]),
    st.integers(-1074, 1023).map(lambda k: math.ldexp(1.0, k)),  # exact powers of two
    st.integers(-1074, 1023).map(lambda k: float(np.nextafter(math.ldexp(1.0, k), np.inf))),
    st.integers(-1073, 1023).map(lambda k: float(np.nextafter(math.ldexp(1.0, k), 0.0))),
)


def index_of(v: float, scale: int) -> int:
    return int(sketches.bucket_index(np.array([v]), scale)[0])


def scaled_log2(v: float, scale: int) -> Decimal:
    """log2(v) * 2^scale to 60 digits (`Decimal(v)` is the float exactly)."""
    with localcontext() as context:
        context.prec = 60
        return Decimal(v).ln() / Decimal(2).ln() * Decimal(2) ** scale


@settings(max_examples=200, deadline=None)
@given(magnitudes, scales)
@example(1.0, 0)
@example(TINY, 20)
@example(HUGE, 20)
@example(HUGE, -4)
@example(MIN_NORMAL, 3)
def test_a_magnitude_lies_in_its_bucket(v: float, scale: int) -> None:
    got = index_of(v, scale)
    mantissa, exponent = math.frexp(v)
    if mantissa == 0.5:  # 2^k is the top of its bucket, whatever the rounding of log2
        k = exponent - 1
        assert got == ((k << scale) - 1 if scale >= 0 else (k - 1) >> -scale)
        # b^got < 2^k <= b^(got + 1), in exponents of 2 times 2^scale
        step = Fraction(2) ** -scale
        assert Fraction(got) * step < k <= Fraction(got + 1) * step
        return
    t = scaled_log2(v, scale)  # v in bucket i exactly when i < t <= i + 1
    want = math.ceil(t) - 1
    nearest = round(t)
    # numpy's log2 is within an ulp or two: a value that close to a bound may take its
    # neighbour, never any other bucket
    if abs(t - nearest) <= abs(t) * Decimal(2) ** -48 + Decimal(10) ** -30:
        assert got in (nearest - 1, nearest), (v, scale, t)
    else:
        assert got == want, (v, scale, t)


@settings(max_examples=150, deadline=None)
@given(st.lists(magnitudes, min_size=2, max_size=30), scales)
def test_bucket_indexes_grow_with_the_magnitudes(values: list[float], scale: int) -> None:
    """Bucket keys sort as the values do: quantiles walk the buckets in key order."""
    got = sketches.bucket_index(np.sort(np.array(values)), scale)
    assert (np.diff(got) >= 0).all()


@settings(max_examples=300, deadline=None)
@given(any_value.filter(lambda v: v != 0), scales, st.data())
def test_a_bucket_downscaled_is_the_bucket_of_the_coarser_scale(
    v: float, scale: int, data: st.DataObject
) -> None:
    by = data.draw(st.integers(0, scale + 4), label="by")
    fine = sketches.value_keys(np.array([v]), scale)
    coarse = sketches.value_keys(np.array([v]), scale - by)
    assert sketches.downscale(fine, np.array([by])).tolist() == coarse.tolist()
    # and the fine bucket's exponent range lies inside the coarse one's: i >> by = j means
    # j * 2^by <= i and i + 1 <= (j + 1) * 2^by
    i, j = index_of(abs(v), scale), index_of(abs(v), scale - by)
    assert i >> by == j
    assert j << by <= i
    assert i + 1 <= (j + 1) << by


def test_zeros_and_signs_keep_their_own_keys() -> None:
    keys = sketches.value_keys(np.array([0.0, -0.0, 3.0, -3.0]), 6)
    assert keys[0] == keys[1] == 0
    assert keys[3] == -keys[2]
    assert keys[2] > 0
    assert sketches.estimates(keys, np.full(4, 6)).tolist()[:2] == [0.0, 0.0]


@settings(max_examples=300, deadline=None)
@given(magnitudes, scales)
@example(1e-200, 6)
@example(1.4e154, 6)
@example(TINY, 6)
@example(HUGE, 6)
@example(HUGE, 0)
def test_a_bucket_estimate_is_within_the_relative_error_of_its_value(v: float, scale: int) -> None:
    key = sketches.value_keys(np.array([v, -v]), scale)
    got = sketches.estimates(key, np.full(2, scale))
    assert got[1] == -got[0]
    bound = Fraction(sketches.relative_error(scale)) * Fraction(v)
    slack = RELATIVE_SLACK * Fraction(v) + ABSOLUTE_SLACK
    error = abs(Fraction(float(got[0])) - Fraction(v))
    assert error <= bound + slack, f"{v!r} at scale {scale} estimated {float(got[0])!r}"


def reference_bound(
    ordered: list[float], q: float, scale: int
) -> tuple[Fraction, Fraction, float, float]:
    """The interpolated order statistic at q, how far a sketch's estimate may be from it,
    and x_lo, x_hi; `ordered` the values repeated by their weights, sorted."""
    n = len(ordered)
    h = q * float(n - 1)  # as numpy's percentile places it (and the sketch does)
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    f = Fraction(h) - lo
    x_lo, x_hi = Fraction(ordered[lo]), Fraction(ordered[hi])
    true = (1 - f) * x_lo + f * x_hi
    spread = (1 - f) * abs(x_lo) + f * abs(x_hi)
    r = Fraction(sketches.relative_error(scale))
    allowed = r * spread + RELATIVE_SLACK * max(abs(x_lo), abs(x_hi)) + ABSOLUTE_SLACK
    return true, allowed, ordered[lo], ordered[hi]


def assert_quantiles_within_bound(
    groups: list[tuple[list[float], list[int]]], scale: int, q: float, seed: int
) -> None:
    """Sketches of every group built at once from rows in any order; each one's q quantile
    within the bound of its values' order statistics."""
    group = np.concatenate([np.full(len(v), g, np.int64) for g, (v, _) in enumerate(groups)])
    values = np.concatenate([np.array(v, np.float64) for v, _ in groups])
    weights = np.concatenate([np.array(w, np.float64) for _, w in groups])
    order = np.random.default_rng(seed).permutation(len(group))
    with np.errstate(over="ignore", invalid="ignore"):  # huge values sum to inf (or nan)
        label, keys, rows = sketches.build(group[order], values[order], weights[order], scale)
    got_labels, got = sketches.quantiles(label, keys, rows, q)
    assert got_labels.tolist() == list(range(len(groups)))
    for g, (v, w) in enumerate(groups):
        ordered = np.sort(np.repeat(np.array(v), w)).tolist()
        true, allowed, _, _ = reference_bound(ordered, q, scale)
        estimate = float(got[g])
        error = abs(Fraction(estimate) - true) if math.isfinite(estimate) else math.inf
        assert error <= allowed, f"q={q} of {v} x {w}: {estimate!r}, want {float(true)!r}"


@pytest.mark.parametrize(
    ("values", "scale", "q"),
    [
        ([1e-200, 2e-200, 3e-200], 6, 0.5),  # L * U of the harmonic middle underflows to 0
        ([1e154, 1.1e154, 1.2e154], 6, 0.5),  # L * U overflows
        ([1.0, 1.797e308, 1.797e308], 6, 0.5),  # the top bucket's U is beyond the floats
        ([1.0, 1.797e308, 1.797e308], 0, 0.5),
        ([TINY, 1e-320, 2e-310], 6, 0.5),  # subnormals
        ([-HUGE, HUGE], 6, 0.0),  # above - below overflows, and 0 * inf is nan
        ([-HUGE, HUGE], 6, 0.5),
        ([-HUGE, 0.0, HUGE], 20, 0.75),
        ([0.0, -0.0, 0.0], 6, 0.5),
        ([-3.0, -3.0, -1.0, 2.0, 2.0, 2.0], -4, 0.4),
    ],
)
def test_quantiles_at_the_edges_of_float64(values: list[float], scale: int, q: float) -> None:
    assert_quantiles_within_bound([(values, [1] * len(values))], scale, q, 0)


@pytest.mark.slow
@settings(max_examples=250, deadline=None)
@given(st.lists(weighted(), min_size=1, max_size=4), scales, QS, st.integers(0, 2**32 - 1))
def test_every_quantile_is_within_the_error_bound_of_the_order_statistics(
    groups: list[tuple[list[float], list[int]]], scale: int, q: float, seed: int
) -> None:
    assert_quantiles_within_bound(groups, scale, q, seed)


@settings(max_examples=100, deadline=None)
@given(weighted(st.integers(1, 10**4).map(float)), QS)
def test_quantiles_of_millisecond_latencies_follow_numpy(
    drawn: tuple[list[float], list[int]], q: float
) -> None:
    """The everyday case, checked against numpy's percentile itself."""
    v, w = drawn
    keys, rows = build_one(v, w)
    _, got = sketches.quantiles(np.zeros(len(keys), np.int64), keys, rows, q)
    want = float(np.percentile(np.repeat(np.array(v), w), 100 * q))
    assert abs(float(got[0]) - want) <= sketches.relative_error(6) * want * (1 + 1e-9)


def test_quantiles_of_no_sketch_and_the_extremes() -> None:
    empty = np.empty(0, np.int64)
    assert [len(a) for a in sketches.quantiles(empty, empty, np.empty(0), 0.5)] == [0, 0]
    keys, rows = build_one([3.0, -7.5, 12.25, 0.0])
    label = np.zeros(len(keys), np.int64)
    # q = 0 and q = 1 are the exact min and max (clamped to the header's)
    assert sketches.quantiles(label, keys, rows, 0.0)[1].tolist() == [-7.5]
    assert sketches.quantiles(label, keys, rows, 1.0)[1].tolist() == [12.25]


@st.composite
def dyadic_weighted(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    """Values short of overflowing a sum, with sample-rate weights (`@0.5` counts twice)."""
    values = draw(value_lists(st.one_of(st.floats(-1e300, 1e300), st.sampled_from(EDGES[:6]))))
    rates = st.sampled_from([1.0, 2.0, 10.0, 0.5, 0.25, 1.25])
    return values, draw(st.lists(rates, min_size=len(values), max_size=len(values)))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(dyadic_weighted(), min_size=1, max_size=4), scales)
def test_a_summary_counts_sums_and_bounds_every_value(
    groups: list[tuple[list[float], list[float]]], scale: int
) -> None:
    group = np.concatenate([np.full(len(v), g, np.int64) for g, (v, _) in enumerate(groups)])
    values = np.concatenate([np.array(v, np.float64) for v, _ in groups])
    weights = np.concatenate([np.array(w, np.float64) for _, w in groups])
    flip = np.arange(len(group))[::-1]
    label, keys, rows = sketches.build(group[flip], values[flip], weights[flip], scale)
    got_label, count, total, low, high = sketches.summary(label, keys, rows)
    assert got_label.tolist() == list(range(len(groups)))
    for g, (v, w) in enumerate(groups):
        # these weights are dyadic with few bits: their sums are exact
        assert count[g] == sum(Fraction(x) for x in w)
        assert (low[g], high[g]) == (min(v), max(v))
        exact = sum(Fraction(x) * Fraction(y) for x, y in zip(v, w, strict=True))
        magnitude = sum(abs(Fraction(x) * Fraction(y)) for x, y in zip(v, w, strict=True))
        rounding = magnitude * Fraction(len(v) + 1, 2**52) + len(v) * ABSOLUTE_SLACK
        assert abs(Fraction(float(total[g])) - exact) <= rounding


@settings(max_examples=150, deadline=None)
@given(weighted(), scales)
def test_a_sketch_is_its_header_then_one_row_per_bucket_in_key_order(
    drawn: tuple[list[float], list[int]], scale: int
) -> None:
    v, w = drawn
    keys, rows = build_one(v, w, scale)
    assert keys[:4].tolist() == list(sketches.HEADER_KEYS)
    assert rows[0] == scale
    assert (np.diff(keys) > 0).all()
    buckets = sketches.value_keys(np.array(v), scale)
    assert keys[4:].tolist() == np.unique(buckets).tolist()
    counts = {int(k): 0.0 for k in keys[4:]}
    for key, weight in zip(buckets.tolist(), w, strict=True):
        counts[key] += weight
    assert rows[4:].tolist() == list(counts.values())


def test_sketches_without_a_value_have_no_quantile() -> None:
    """Headers alone (a flush whose values all went elsewhere): NaN, not an error."""
    keys = np.asarray(sketches.HEADER_KEYS * 2, np.int64)
    values = np.asarray([6.0, 0.0, 0.0, 0.0] * 2)
    label, estimate, exact = sketches.exact_quantiles(
        np.asarray([0] * 4 + [1] * 4), keys, values, 0.5
    )
    assert label.tolist() == [0, 1]
    assert np.isnan(estimate).all()
    assert exact
