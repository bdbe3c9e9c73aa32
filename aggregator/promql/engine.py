"""The evaluator: a parsed query at one instant or at every step of a range, over the store's
raw points (each selector read once per query, for every step's window)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aggregator.promql import functions, operators
from aggregator.promql.names import Labels, format_labels, without_name
from aggregator.promql.native_histograms import (
    Histogram,
    SketchSeries,
    added,
    load_sketches,
    quantile,
)
from aggregator.promql.operators import group_labels
from aggregator.promql.series import (
    LOOKBACK_MS,
    EvalError,
    Points,
    QueryTimeout,
    Sample,
    Vector,
    load,
)
from aggregator.promql.syntax import (
    RANGE_FUNCTIONS,
    SET_OPERATORS,
    Aggregate,
    Binary,
    Call,
    Negate,
    Node,
    Number,
    RangeSelector,
    Selector,
    String,
    Subquery,
    Unsupported,
    selectors_in,
)
from aggregator.promql.vector_functions import (
    absent_labels,
    histogram_quantile,
    label_join,
    label_replace,
    sort,
)
from storage.base import StoreReader

Value = float | str | Vector | list[Points]
SCALAR_FUNCTIONS = frozenset({"time", "scalar", "pi"})
HISTOGRAM_FUNCTIONS = frozenset({"histogram_quantile", "histogram_count", "histogram_sum"})
MAX_SAMPLES = 20_000_000  # points one query may hold (Prometheus' --query.max-samples is 50 M)


def value_type(node: Node) -> str:
    """`scalar`, `string`, `vector` or `matrix`: what the node evaluates to."""
    match node:
        case Number():
            return "scalar"
        case String():
            return "string"
        case RangeSelector() | Subquery():
            return "matrix"
        case Call(name=name):
            return "scalar" if name in SCALAR_FUNCTIONS else "vector"
        case Negate(expr=expr):
            return value_type(expr)
        case Binary(lhs=lhs, rhs=rhs):
            both = value_type(lhs) == value_type(rhs) == "scalar"
            return "scalar" if both else "vector"
    return "vector"


@dataclass
class Evaluator:
    """Evaluates nodes at times in [start_ms, end_ms] (the query's first and last step)."""

    store: StoreReader
    start_ms: int
    end_ms: int
    query_ms: tuple[int, int] | None = None  # the query's start and end, for @ start() and end()
    deadline: float = math.inf  # time.monotonic() past which the query stops

    def __post_init__(self) -> None:
        self._loaded: dict[tuple[str, int], list[Points]] = {}
        self._sketches: dict[tuple[str, int], list[SketchSeries]] = {}
        self._samples = 0
        if self.query_ms is None:
            self.query_ms = (self.start_ms, self.end_ms)
        self._inner: dict[Subquery, tuple[Evaluator, dict[int, Vector]]] = {}

    def points(self, selector: Selector, range_ms: int) -> list[Points]:
        key = (selector.text, range_ms)
        if key not in self._loaded:
            loaded = load(self.store, selector.matchers, *self._span(selector, range_ms))
            self._count(sum(len(p.ts) for p in loaded))
            self._loaded[key] = loaded
        return self._loaded[key]

    def sketches(self, selector: Selector, range_ms: int) -> list[SketchSeries]:
        key = (selector.text, range_ms)
        if key not in self._sketches:
            loaded = load_sketches(self.store, selector.matchers, *self._span(selector, range_ms))
            self._count(sum(len(s.keys) + len(s.ts) for s in loaded))
            self._sketches[key] = loaded
        return self._sketches[key]

    def _span(self, selector: Selector, range_ms: int) -> tuple[int, int]:
        """The first and last time a selector's points are read at, over every step."""
        first = self._at(selector, self.start_ms) - selector.offset_ms - range_ms
        return first, self._at(selector, self.end_ms) - selector.offset_ms

    def _count(self, samples: int) -> None:
        self._samples += samples
        if self._samples > MAX_SAMPLES:
            raise EvalError(
                "query processing would load too many samples into memory in query "
                f"execution (over {MAX_SAMPLES:,}): ask for a shorter range or fewer series"
            )
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise QueryTimeout

    def _at(self, selector: Selector, ts: int) -> int:
        """The time a selector is evaluated at for step ts: its @, or ts."""
        assert self.query_ms is not None
        if selector.at == "at":
            return selector.at_ms
        if selector.at:
            return self.query_ms[selector.at == "end"]
        return ts

    def scalar(self, node: Node, ts: int) -> float:
        value = self.eval(node, ts)
        assert isinstance(value, float)
        return value

    def vector(self, node: Node, ts: int) -> Vector:
        value = self.eval(node, ts)
        assert isinstance(value, list)
        return value  # type: ignore[return-value]

    def eval(self, node: Node, ts: int) -> Value:
        match node:
            case Number(value=value):
                return value
            case String(value=text):
                return text
            case Selector():
                return self._instant(node, ts)
            case RangeSelector() | Subquery():
                return [w for w in self._windows(node, ts)[2] if len(w.ts)]
            case Negate(expr=expr):
                if value_type(expr) == "scalar":
                    return -self.scalar(expr, ts)
                return _unique(
                    [Sample(without_name(s.labels), -s.value) for s in self.vector(expr, ts)]
                )
            case Call():
                return self._call(node, ts)
            case Aggregate(op=op, expr=expr, param=param, without=without, grouping=grouping):
                given = math.nan if param is None else self.eval(param, ts)
                assert isinstance(given, float | str)
                return _unique(
                    operators.aggregate(op, self.vector(expr, ts), grouping, without, given)
                )
            case Binary():
                return self._binary(node, ts)
        raise EvalError(f"cannot evaluate {node}")

    def _instant(self, selector: Selector, ts: int, times: bool = False) -> Vector:
        """The selector's samples at ts (or, with `times`, their times in seconds)."""
        at = self._at(selector, ts) - selector.offset_ms
        out = []
        for points in self.points(selector, LOOKBACK_MS):
            i = points.latest(at)
            if i is not None:
                out.append(
                    Sample(points.labels, points.ts[i] / 1000 if times else points.values[i])
                )
        return out

    def _call(self, call: Call, ts: int) -> Value:
        name, args = call.name, call.args
        if name in RANGE_FUNCTIONS:
            return self._range_call(name, args, ts)
        if name == "time":
            return ts / 1000
        if name == "pi":
            return math.pi
        if name in functions.CALENDAR_FUNCTIONS:  # of each value, or of the evaluation time
            if not args:
                return [Sample((), functions.calendar_value(name, ts / 1000))]
            vector = self.vector(args[0], ts)
            return _unique(
                [
                    Sample(without_name(s.labels), functions.calendar_value(name, s.value))
                    for s in vector
                ]
            )
        if name == "vector":
            return [Sample((), self.scalar(args[0], ts))]
        if name == "scalar":
            vector = self.vector(args[0], ts)
            return vector[0].value if len(vector) == 1 else math.nan
        if name == "absent":
            if self.vector(args[0], ts):
                return []
            arg = args[0]
            return [Sample(absent_labels(arg.matchers) if isinstance(arg, Selector) else (), 1.0)]
        if name in HISTOGRAM_FUNCTIONS:
            return self._histogram_call(name, args, ts)
        if name == "label_replace":
            texts = [a.value for a in args[1:] if isinstance(a, String)]
            return _unique(label_replace(self.vector(args[0], ts), *texts))
        if name == "label_join":
            dst, separator, *sources = [a.value for a in args[1:] if isinstance(a, String)]
            return _unique(label_join(self.vector(args[0], ts), dst, separator, sources))
        if name == "timestamp":  # a selector's samples' own times, else the evaluation time
            arg = args[0]
            if isinstance(arg, Selector):
                vector = self._instant(arg, ts, times=True)
            else:
                vector = [Sample(s.labels, ts / 1000) for s in self.vector(arg, ts)]
            return _unique([Sample(without_name(s.labels), s.value) for s in vector])
        if name in ("sort", "sort_desc"):
            return sort(self.vector(args[0], ts), name == "sort_desc")
        scalars = [self.scalar(a, ts) for a in args[1:]]
        return _unique(functions.simple_function(name, self.vector(args[0], ts), scalars))

    def _histogram_call(self, name: str, args: tuple[Node, ...], ts: int) -> Vector:
        """histogram_quantile over `le` buckets and over sketches; histogram_count and
        histogram_sum over sketches."""
        natives = [(without_name(labels), h) for labels, h in self.histograms(args[-1], ts)]
        if name == "histogram_count":
            return _unique([Sample(labels, h.count) for labels, h in natives])
        if name == "histogram_sum":
            return _unique([Sample(labels, h.sum) for labels, h in natives])
        q = self.scalar(args[0], ts)
        buckets = histogram_quantile(q, self.vector(args[1], ts))
        return _unique(buckets + [Sample(labels, quantile(q, h)) for labels, h in natives])

    def histograms(self, node: Node, ts: int) -> list[tuple[Labels, Histogram]]:
        """The native histograms `node` evaluates to at ts: rate() or increase() of sketch
        series, summed or not. Any other form over series that hold sketches is refused
        (Prometheus would answer it; Shipboard's evaluator does not)."""
        match node:
            case Call(name="rate" | "increase", args=(RangeSelector() as matrix,)):
                start, end = self._range_bounds(matrix, ts)
                out = []
                for series in self.sketches(matrix.selector, matrix.range_ms):
                    h = series.increase(start, end, node.name == "rate")
                    if h is not None:
                        out.append((without_name(series.labels), h))
                return out
            case Aggregate(op="sum", expr=expr, without=without, grouping=grouping):
                groups: dict[Labels, list[Histogram]] = {}
                for labels, h in self.histograms(expr, ts):
                    groups.setdefault(group_labels(labels, grouping, without), []).append(h)
                return [(labels, added(parts)) for labels, parts in groups.items()]
        for selector in selectors_in(node):
            if self.sketches(selector, LOOKBACK_MS):
                name = selector.text.removesuffix("{}")
                raise Unsupported(
                    f"{name} holds latency sketches (native histograms): a histogram function "
                    "over anything but rate() or increase() of them, summed or not,"
                )
        return []

    def _range_bounds(self, node: RangeSelector, ts: int) -> tuple[int, int]:
        """A range selector's first and last time at ts."""
        end = self._at(node.selector, ts) - node.selector.offset_ms
        return end - node.range_ms, end

    def _windows(self, node: RangeSelector | Subquery, ts: int) -> tuple[int, int, list[Points]]:
        """A range's first and last time at ts and each series' points within them."""
        if isinstance(node, RangeSelector):
            start, end = self._range_bounds(node, ts)
            points = self.points(node.selector, node.range_ms)
            return start, end, [p.window(start, end) for p in points]
        end = ts - node.offset_ms
        start = end - node.range_ms
        return start, end, self._subquery(node, start, end)

    def _subquery(self, node: Subquery, start: int, end: int) -> list[Points]:
        """The subquery's expression at each multiple of its step in [start, end], evaluated
        once per time by an evaluator of its own (its selectors read from further back)."""
        if node not in self._inner:
            offset = node.offset_ms + node.range_ms
            inner = Evaluator(
                self.store,
                self.start_ms - offset,
                self.end_ms - node.offset_ms,
                self.query_ms,
                self.deadline,
            )
            self._inner[node] = (inner, {})
        inner, at_times = self._inner[node]
        step = node.step_ms
        first = start // step * step
        first += step if first < start else 0
        rows: dict[Labels, tuple[list[int], list[float]]] = {}
        for t in range(first, end + 1, step):
            self.check_time()
            if t not in at_times:
                at_times[t] = inner.vector(node.expr, t)
            for s in at_times[t]:
                times, values = rows.setdefault(s.labels, ([], []))
                times.append(t)
                values.append(s.value)
        return [Points(labels, t, v) for labels, (t, v) in sorted(rows.items())]

    def _range_call(self, name: str, args: tuple[Node, ...], ts: int) -> Vector:
        [matrix] = [a for a in args if isinstance(a, RangeSelector | Subquery)]
        params = [self.scalar(a, ts) for a in args if not isinstance(a, RangeSelector | Subquery)]
        start, end, windows = self._windows(matrix, ts)
        if name == "absent_over_time":
            if any(len(w.ts) for w in windows):
                return []
            if isinstance(matrix, Subquery):
                return [Sample((), 1.0)]  # Prometheus names no labels for a subquery
            return [Sample(absent_labels(matrix.selector.matchers), 1.0)]
        scalar = params[0] if params else math.nan
        out = []
        for window in windows:
            value = functions.range_function(name, window, start, end, scalar, ts)
            if value is not None:
                keep = name == "last_over_time"  # the one range function keeping the name
                out.append(Sample(window.labels if keep else without_name(window.labels), value))
        return _unique(out)

    def _binary(self, node: Binary, ts: int) -> Value:
        lhs, rhs = self.eval(node.lhs, ts), self.eval(node.rhs, ts)
        if isinstance(lhs, float) and isinstance(rhs, float):
            return operators.scalar_op(node.op, lhs, rhs)
        op, bool_ = node.op, node.return_bool
        if isinstance(rhs, float):
            return _unique(operators.vector_scalar(op, _as_vector(lhs), rhs, False, bool_))
        if isinstance(lhs, float):
            return _unique(operators.vector_scalar(op, _as_vector(rhs), lhs, True, bool_))
        if op in SET_OPERATORS:
            return _unique(
                operators.set_operation(op, _as_vector(lhs), _as_vector(rhs), node.matching)
            )
        return _unique(
            operators.vector_vector(op, _as_vector(lhs), _as_vector(rhs), bool_, node.matching)
        )


def _as_vector(value: Value) -> Vector:
    assert isinstance(value, list)
    return value  # type: ignore[return-value]


def _unique(vector: Vector) -> Vector:
    """Prometheus refuses a result with two elements of one label set (e.g. rate() over two
    metrics with the same labels, whose names it drops)."""
    seen: set[Labels] = set()
    for s in vector:
        if s.labels in seen:
            raise EvalError(
                f"vector cannot contain metrics with the same labelset {format_labels(s.labels)}"
            )
        seen.add(s.labels)
    return vector
