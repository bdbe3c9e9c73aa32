"""PromQL's functions as Prometheus v2 computes them (promql/functions.go), float for float:
the same order of operations, Kahan sums and extrapolation, so answers agree to the last bits."""

from __future__ import annotations

import calendar
import itertools
import math
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from aggregator.promql.names import without_name
from aggregator.promql.series import EvalError, Points, Sample, Vector


def kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    t = total + inc
    if abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def extrapolated_rate(
    points: Points, range_start: int, range_end: int, is_counter: bool, is_rate: bool
) -> float | None:
    """rate, increase and delta: the change over the points, extrapolated towards the range's
    ends when the first and last points are close to them (not past a counter's zero)."""
    ts, values = points.ts, points.values
    if len(ts) < 2:
        return None
    result = values[-1] - values[0]
    if is_counter:
        for previous, current in itertools.pairwise(values):
            if current < previous:
                result += previous
    first = values[0]
    to_zero = first / result if is_counter and result > 0 and first >= 0 else math.inf
    return result * extrapolation(ts, range_start, range_end, is_rate, to_zero)


def extrapolation(
    ts: list[int], range_start: int, range_end: int, is_rate: bool, to_zero: float = math.inf
) -> float:
    """The factor that extrapolates a change between the first and last of `ts` (two at least)
    to the range, per second if `is_rate`: towards an end when the points come close to it
    (within 1.1 average intervals), else by half an interval; towards the start not past where
    a counter was zero (`to_zero`: that point's distance from the first, in sampled intervals)."""
    to_start = (ts[0] - range_start) / 1000
    to_end = (range_end - ts[-1]) / 1000
    sampled = (ts[-1] - ts[0]) / 1000
    average = sampled / (len(ts) - 1)
    to_start = min(to_start, sampled * to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    factor = interval / sampled
    if is_rate:
        factor /= (range_end - range_start) / 1000
    return factor


def instant_value(points: Points, is_rate: bool) -> float | None:
    """irate and idelta: from the last two points."""
    if len(points.ts) < 2:
        return None
    last, previous = points.values[-1], points.values[-2]
    result = last if is_rate and last < previous else last - previous
    interval = points.ts[-1] - points.ts[-2]
    if interval == 0:
        return None
    return result / (interval / 1000) if is_rate else result


def _avg(values: list[float]) -> float:
    mean, count, c = 0.0, 0.0, 0.0
    for v in values:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and not math.isnan(v):
                continue
        mean, c = kahan_inc(v / count - mean / count, mean, c)
    return mean if math.isinf(mean) else mean + c


def _sum(values: list[float]) -> float:
    total, c = 0.0, 0.0
    for v in values:
        total, c = kahan_inc(v, total, c)
    return total if math.isinf(total) else total + c


def _extreme(values: list[float], better: Callable[[float, float], bool]) -> float:
    best = values[0]
    for v in values:
        if better(v, best) or math.isnan(best):
            best = v
    return best


def _variance(values: list[float]) -> float:
    count, mean, c_mean, aux, c_aux = 0.0, 0.0, 0.0, 0.0, 0.0
    for v in values:
        count += 1
        delta = v - (mean + c_mean)
        mean, c_mean = kahan_inc(delta / count, mean, c_mean)
        aux, c_aux = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux)
    return (aux + c_aux) / count


def _changes(values: list[float]) -> float:
    return float(
        sum(
            1
            for a, b in itertools.pairwise(values)
            if b != a and not (math.isnan(a) and math.isnan(b))
        )
    )


def linear_regression(points: Points, intercept_ms: int) -> tuple[float, float]:
    """Least squares over the points: the slope per second and the value at intercept_ms."""
    n = sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    values = points.values
    first = values[0]
    constant = all(v == first for v in values)
    for t, v in zip(points.ts, values, strict=True):
        n += 1.0
        x = (t - intercept_ms) / 1e3
        sx, cx = kahan_inc(x, sx, cx)
        sy, cy = kahan_inc(v, sy, cy)
        sxy, cxy = kahan_inc(x * v, sxy, cxy)
        sx2, cx2 = kahan_inc(x * x, sx2, cx2)
    if constant:
        return (math.nan, math.nan) if math.isinf(first) else (0.0, first)
    sx, sy, sxy, sx2 = sx + cx, sy + cy, sxy + cxy, sx2 + cx2
    with np.errstate(all="ignore"):  # a zero variance divides as Go does
        slope = float(np.float64(sxy - sx * sy / n) / np.float64(sx2 - sx * sx / n))
    return slope, sy / n - slope * sx / n


def quantile(q: float, values: list[float]) -> float:
    """The q-quantile of values, interpolated between the two nearest (promql/quantile.go)."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=lambda v: (not math.isnan(v), v))  # NaN first, as Go's sort
    n = float(len(ordered))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[int(lower)] * (1 - weight) + ordered[int(upper)] * weight


OVER_TIME: dict[str, Callable[[list[float]], float]] = {
    "avg_over_time": _avg,
    "sum_over_time": _sum,
    "min_over_time": lambda vs: _extreme(vs, lambda a, b: a < b),
    "max_over_time": lambda vs: _extreme(vs, lambda a, b: a > b),
    "count_over_time": lambda vs: float(len(vs)),
    "last_over_time": lambda vs: vs[-1],
    "present_over_time": lambda vs: 1.0,
    "stdvar_over_time": _variance,
    "stddev_over_time": lambda vs: math.sqrt(_variance(vs)),
    "changes": _changes,
    "resets": lambda vs: float(sum(1 for a, b in itertools.pairwise(vs) if b < a)),
}


def range_function(
    name: str,
    points: Points,
    range_start: int,
    range_end: int,
    scalar: float = math.nan,
    at_ms: int = 0,
) -> float | None:
    """`name` over one series' points in [range_start, range_end] (the range of evaluation
    time `at_ms`, less any offset); None: no output sample."""
    if not len(points.ts):
        return None
    if name in ("rate", "increase", "delta"):
        return extrapolated_rate(points, range_start, range_end, name != "delta", name == "rate")
    if name in ("irate", "idelta"):
        return instant_value(points, name == "irate")
    if name in ("deriv", "predict_linear"):
        if len(points.ts) < 2:
            return None
        if name == "deriv":  # near the points' times, for accuracy (Prometheus issue 2674)
            return linear_regression(points, points.ts[0])[0]
        slope, intercept = linear_regression(points, at_ms)
        return slope * scalar + intercept
    values = points.values
    if name == "quantile_over_time":
        return quantile(scalar, values)
    return OVER_TIME[name](values)


def go_max(a: float, b: float) -> float:
    """Go's math.Max: NaN if either is NaN."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def go_min(a: float, b: float) -> float:
    return math.nan if math.isnan(a) or math.isnan(b) else min(a, b)


def _round(v: float, to_nearest: float) -> float:
    with np.errstate(all="ignore"):  # Go's IEEE answers for a 0 or infinite to_nearest
        inverse = np.float64(1.0) / np.float64(to_nearest)
        return float(np.floor(v * inverse + 0.5) / inverse)


def _ufunc(f: Callable[[float], float]) -> Callable[[float], float]:
    """A math function with Go's answers off its domain (NaN, ±Inf) instead of exceptions."""

    def safe(v: float) -> float:
        with np.errstate(all="ignore"):
            return float(f(np.float64(v)))

    return safe


_TRIGONOMETRY: dict[str, Callable[[float], float]] = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
}  # fmt: skip
SIMPLE: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": _ufunc(np.ceil),
    "floor": _ufunc(np.floor),
    "exp": _ufunc(np.exp),
    "sqrt": _ufunc(np.sqrt),
    "ln": _ufunc(np.log),
    "log2": _ufunc(np.log2),
    "log10": _ufunc(np.log10),
    "sgn": lambda v: -1.0 if v < 0 else 1.0 if v > 0 else v,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
    **{name: _ufunc(f) for name, f in _TRIGONOMETRY.items()},
}

_CALENDAR: dict[str, Callable[[datetime], int]] = {
    "day_of_month": lambda t: t.day,
    "day_of_week": lambda t: t.isoweekday() % 7,  # Sunday is 0, as Go's Weekday
    "day_of_year": lambda t: t.timetuple().tm_yday,
    "days_in_month": lambda t: calendar.monthrange(t.year, t.month)[1],
    "hour": lambda t: t.hour,
    "minute": lambda t: t.minute,
    "month": lambda t: t.month,
    "year": lambda t: t.year,
}
CALENDAR_FUNCTIONS = frozenset(_CALENDAR)


def calendar_value(name: str, seconds: float) -> float:
    """The UTC calendar field of unix time `seconds` (whole seconds, as Go truncates)."""
    try:
        when = datetime.fromtimestamp(math.trunc(seconds), UTC)
    except (ValueError, OverflowError, OSError):
        raise EvalError(f"{name}(): {seconds} is not a time Shipboard can read") from None
    return float(_CALENDAR[name](when))


def simple_function(name: str, vector: Vector, scalars: list[float]) -> Vector:
    """Functions of each element's value; the result drops the metric name."""
    if name == "round":
        to_nearest = scalars[0] if scalars else 1.0
        f: Callable[[float], float] = lambda v: _round(v, to_nearest)  # noqa: E731
    elif name == "clamp":
        low, high = scalars
        if high < low:
            return []
        f = lambda v: go_max(low, go_min(high, v))  # noqa: E731
    elif name == "clamp_min":
        f = lambda v: go_max(scalars[0], v)  # noqa: E731
    elif name == "clamp_max":
        f = lambda v: go_min(scalars[0], v)  # noqa: E731
    else:
        f = SIMPLE[name]
    return [Sample(without_name(s.labels), f(s.value)) for s in vector]
