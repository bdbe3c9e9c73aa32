"""PromQL parsed by `promql-parser` (the Rust parser's bindings) into this package's own nodes.

The parser checks the grammar and the argument types; this adapter keeps what the evaluator
supports and refuses the rest by name (`Unsupported`), so that a query is answered exactly or
not at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import promql_parser as pp

from aggregator.promql.names import NAME

RANGE_FUNCTIONS = frozenset(
    {
        "rate", "irate", "increase", "delta", "idelta", "changes", "resets",
        "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
        "last_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time",
        "quantile_over_time", "deriv", "predict_linear", "absent_over_time",
    }
)  # fmt: skip
INSTANT_FUNCTIONS = frozenset(
    {
        "abs", "ceil", "floor", "round", "exp", "sqrt", "ln", "log2", "log10", "sgn",
        "clamp", "clamp_min", "clamp_max", "absent", "label_replace", "time", "vector",
        "scalar", "histogram_quantile", "histogram_count", "histogram_sum", "label_join",
        "sort", "sort_desc", "timestamp",
        "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
        "atanh", "deg", "rad", "pi", "day_of_month", "day_of_week", "day_of_year",
        "days_in_month", "hour", "minute", "month", "year",
    }
)  # fmt: skip
AGGREGATIONS = frozenset(
    {
        "sum", "avg", "min", "max", "count", "topk", "bottomk", "group", "stddev", "stdvar",
        "quantile", "count_values",
    }
)  # fmt: skip
# Prometheus v2 evaluates these at every step with an @ selector's offset fixed at the query's
# start (its AtModifierUnsafeFunctions), an answer that moves with the step: refused.
AT_UNSAFE = frozenset({"predict_linear", "timestamp"})
DEFAULT_STEP_MS = 60_000  # a subquery's step when it names none: Prometheus' default
# evaluation_interval
ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^"})
COMPARISON = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})


class PromQLError(ValueError):
    """A query that cannot be parsed or is outside the supported subset (`bad_data`)."""


class Unsupported(PromQLError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not supported by Shipboard's PromQL")


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    name: str
    op: str  # = != =~ !~
    value: str
    regex: re.Pattern[str] | None

    def matches(self, value: str) -> bool:
        if self.regex is None:
            return (value == self.value) == (self.op == "=")
        return (self.regex.match(value) is not None) == (self.op == "=~")


@dataclass(frozen=True, slots=True)
class Number:
    value: float


@dataclass(frozen=True, slots=True)
class String:
    value: str


@dataclass(frozen=True, slots=True)
class Selector:
    text: str  # the selector as written, offset and @ included: the key of its loaded series
    matchers: tuple[LabelMatcher, ...]
    offset_ms: int
    at: str = ""  # @: "at" (at_ms), "start" or "end" (the query's start() or end()), or none
    at_ms: int = 0


@dataclass(frozen=True, slots=True)
class RangeSelector:
    selector: Selector
    range_ms: int


@dataclass(frozen=True, slots=True)
class Subquery:
    """`expr[range:step] offset o`: expr evaluated at the multiples of step in each range."""

    expr: Node
    range_ms: int
    step_ms: int
    offset_ms: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Aggregate:
    op: str
    expr: Node
    param: Node | None
    without: bool
    grouping: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Matching:
    """How two vectors' elements pair: on(labels) or ignoring(labels) (neither: every label
    but the name), one to one or with group_left/group_right and the labels they copy."""

    on: bool = False
    labels: tuple[str, ...] = ()
    group: str = ""  # "left" (many-to-one), "right" (one-to-many), "" (one-to-one)
    include: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool
    matching: Matching


@dataclass(frozen=True, slots=True)
class Negate:
    expr: Node


Node = Number | String | Selector | RangeSelector | Subquery | Call | Aggregate | Binary | Negate


def compile_regex(pattern: str) -> re.Pattern[str]:
    """A label regex as Prometheus anchors it, `^(?:…)$`. RE2 and Python read the constructs
    label regexes use alike, but for flags: RE2's `(?i)` holds to the end of its group."""
    try:
        return re.compile(f"(?:{_scoped_flags(pattern)})\\Z")
    except re.error as error:
        raise PromQLError(f"invalid regular expression {pattern!r}: {error}") from error


_FLAGS = re.compile(r"\(\?([imsU]+)\)")


def _scoped_flags(pattern: str) -> str:
    """`a(?i)b|c` as `a(?i:b)|(?i:c)`: each `(?flags)` holds to the end of its group, across
    its alternatives, as in RE2."""
    out: list[str] = []
    active: list[list[str]] = [[]]  # per open group: the flags set in it so far
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        flags = None if in_class else _FLAGS.match(pattern, i)
        if flags is not None:
            if "U" in flags[1]:
                raise Unsupported("the regex flag U")
            out.append(f"(?{flags[1]}:")
            active[-1].append(flags[1])
            i = flags.end()
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        elif char == "(" and not in_class:
            active.append([])
        elif char == ")" and not in_class and len(active) > 1:
            out.append(")" * len(active.pop()))
        elif char == "|" and not in_class:
            out.append(")" * len(active[-1]) + "|" + "".join(f"(?{f}:" for f in active[-1]))
            i += 1
            continue
        out.append(char)
        i += 1
    out.append(")" * len(active[0]))
    return "".join(out)


def label_matcher(matcher: pp.Matcher) -> LabelMatcher:
    ops = ((pp.MatchOp.Equal, "="), (pp.MatchOp.NotEqual, "!="), (pp.MatchOp.Re, "=~"))
    op = next((text for kind, text in ops if matcher.op == kind), "!~")  # MatchOp: no hash
    regex = compile_regex(matcher.value) if op in ("=~", "!~") else None
    return LabelMatcher(matcher.name, op, matcher.value, regex)


def _selector_matchers(selector: pp.VectorSelector) -> tuple[LabelMatcher, ...]:
    if selector.matchers.or_matchers:
        raise Unsupported("a selector with 'or' between its matchers")
    matchers = tuple(label_matcher(m) for m in selector.matchers.matchers)
    if selector.name is not None:
        matchers = (LabelMatcher(NAME, "=", selector.name, None), *matchers)
    return matchers


def _ms(delta: timedelta | None) -> int:
    return 0 if delta is None else delta // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _selector(node: pp.VectorSelector) -> Selector:
    matchers, offset = _selector_matchers(node), _ms(node.offset)
    modifier = node.at
    if modifier is None:
        return Selector(str(node), matchers, offset)
    if modifier.type == pp.AtModifierType.Start:
        return Selector(str(node), matchers, offset, "start")
    if modifier.type == pp.AtModifierType.End:
        return Selector(str(node), matchers, offset, "end")
    at = modifier.at  # a time before 1970 panics in the bindings: caught by parse()
    assert at is not None
    return Selector(str(node), matchers, offset, "at", (at - _EPOCH) // timedelta(milliseconds=1))


def parse(query: str) -> Node:
    """The query as nodes; PromQLError says what is wrong or unsupported."""
    try:
        return _convert(pp.parse(query))
    except PromQLError:
        raise
    except ValueError as error:
        raise PromQLError(f"parse error: {error}") from error
    except BaseException as error:  # a panic in the Rust bindings is pyo3's PanicException
        if type(error).__name__ != "PanicException":
            raise
        raise PromQLError(f"parse error: the parser cannot read {query!r}") from None


def _convert(expr: pp.Expr) -> Node:
    if isinstance(expr, pp.ParenExpr):
        return _convert(expr.expr)
    if isinstance(expr, pp.NumberLiteral):
        return Number(expr.val)
    if isinstance(expr, pp.StringLiteral):
        return String(expr.val)
    if isinstance(expr, pp.VectorSelector):
        return _selector(expr)
    if isinstance(expr, pp.MatrixSelector):
        return RangeSelector(_selector(expr.vector_selector), _ms(expr.range))
    if isinstance(expr, pp.UnaryExpr):
        return Negate(_convert(expr.expr))
    if isinstance(expr, pp.Call):
        name = expr.func.name
        if name not in RANGE_FUNCTIONS | INSTANT_FUNCTIONS:
            raise Unsupported(f"the function {name}()")
        args = tuple(_convert(arg) for arg in expr.args)
        if name in AT_UNSAFE and any(_fixed_time(arg) for arg in args):
            raise Unsupported(f"the @ modifier inside {name}()")  # Prometheus' answer shifts
        return Call(name, args)
    if isinstance(expr, pp.AggregateExpr):
        return _aggregate(expr)
    if isinstance(expr, pp.BinaryExpr):
        return _binary(expr)
    if isinstance(expr, pp.SubqueryExpr):
        if expr.at is not None:
            raise Unsupported("the @ modifier on a subquery")
        step = _ms(expr.step) or DEFAULT_STEP_MS
        return Subquery(_convert(expr.expr), _ms(expr.range), step, _ms(expr.offset))
    raise Unsupported(f"the expression {expr.prettify()}")


def _fixed_time(node: Node) -> bool:
    """Whether a selector in node has an @ modifier."""
    return any(selector.at for selector in selectors_in(node))


def selectors_in(node: Node) -> Iterator[Selector]:
    """Every selector of node's expression, those of range selectors included."""
    match node:
        case Selector():
            yield node
        case RangeSelector(selector=selector):
            yield selector
        case Subquery(expr=inner) | Negate(expr=inner):
            yield from selectors_in(inner)
        case Call(args=args):
            for arg in args:
                yield from selectors_in(arg)
        case Aggregate(expr=inner, param=param):
            yield from selectors_in(inner)
            if param is not None:
                yield from selectors_in(param)
        case Binary(lhs=lhs, rhs=rhs):
            yield from selectors_in(lhs)
            yield from selectors_in(rhs)


def _aggregate(expr: pp.AggregateExpr) -> Aggregate:
    op = str(expr.op)
    if op not in AGGREGATIONS:
        raise Unsupported(f"the aggregation {op}")
    modifier = expr.modifier
    without = modifier is not None and modifier.type == pp.AggModifierType.Without
    grouping = tuple(modifier.labels) if modifier is not None else ()
    param = None if expr.param is None else _convert(expr.param)
    return Aggregate(op, _convert(expr.expr), param, without, grouping)


def _binary(expr: pp.BinaryExpr) -> Binary:
    op = str(expr.op)
    if op not in ARITHMETIC | COMPARISON | SET_OPERATORS:
        raise Unsupported(f"the operator {op}")
    modifier = expr.modifier
    if modifier is None:
        return Binary(op, _convert(expr.lhs), _convert(expr.rhs), False, Matching())
    fill = modifier.fill_values
    if fill.lhs is not None or fill.rhs is not None:
        raise Unsupported("fill()")  # Prometheus 3's, unknown to v2
    on = False
    labels: tuple[str, ...] = ()
    if modifier.matching is not None:
        on = modifier.matching.type == pp.LabelModifierType.Include
        labels = tuple(modifier.matching.labels)
    sides = (
        (pp.VectorMatchCardinality.ManyToOne, "left"),
        (pp.VectorMatchCardinality.OneToMany, "right"),
    )
    group = next((side for card, side in sides if modifier.card == card), "")  # enums: no hash
    matching = Matching(on, labels, group, tuple(modifier.group_labels or ()))
    return Binary(op, _convert(expr.lhs), _convert(expr.rhs), modifier.return_bool, matching)
