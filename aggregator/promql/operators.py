"""Aggregations and binary operators as Prometheus v2's engine computes them (promql/engine.go):
grouping by/without, one-to-one vector matching with on/ignoring, bool, and/or/unless."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from aggregator.promql.functions import quantile
from aggregator.promql.names import LABEL_NAME, NAME, Labels, format_labels, without_name
from aggregator.promql.params import format_value
from aggregator.promql.series import EvalError, Sample, Vector
from aggregator.promql.syntax import ARITHMETIC, COMPARISON, Matching

_MAX_INT64 = 2.0**63


@functools.lru_cache(maxsize=1 << 16)  # the same few series' labels at every step
def group_labels(labels: Labels, grouping: tuple[str, ...], without: bool) -> Labels:
    if without:
        return tuple(p for p in labels if p[0] not in grouping and p[0] != NAME)
    return tuple(p for p in labels if p[0] in grouping)


class _Group:
    __slots__ = ("count", "mean", "samples", "value")

    def __init__(self, first: Sample, op: str) -> None:
        self.value = 0.0 if op in ("stddev", "stdvar") else 1.0 if op == "group" else first.value
        self.mean = first.value
        self.count = 1
        self.samples = [first]

    def add(self, op: str, s: Sample) -> None:
        v = s.value
        if op == "sum":
            self.value += v
        elif op == "avg":
            self.count += 1
            if math.isinf(self.mean) and (
                (math.isinf(v) and (self.mean > 0) == (v > 0))
                or (not math.isinf(v) and not math.isnan(v))
            ):
                return
            self.mean += v / self.count - self.mean / self.count
        elif op == "max":
            if self.value < v or math.isnan(self.value):
                self.value = v
        elif op == "min":
            if self.value > v or math.isnan(self.value):
                self.value = v
        elif op == "count":
            self.count += 1
        elif op in ("stddev", "stdvar"):
            self.count += 1
            delta = v - self.mean
            self.mean += delta / self.count
            self.value += delta * (v - self.mean)
        elif op in ("topk", "bottomk", "quantile"):
            self.samples.append(s)

    def result(self, op: str) -> float:
        if op == "avg":
            return self.mean
        if op == "count":
            return float(self.count)
        if op == "stdvar":
            return self.value / self.count
        if op == "stddev":
            return math.sqrt(self.value / self.count)
        return self.value


def _k(param: float) -> int:
    if math.isnan(param) or not -_MAX_INT64 <= param < _MAX_INT64:
        raise EvalError(f"Scalar value {param} overflows int64")
    return int(param)


def _ranked(samples: list[Sample], k: int, top: bool) -> list[Sample]:
    """topk's k largest (NaN the smallest), bottomk's k smallest (NaN the largest), in order."""
    sign = -1.0 if top else 1.0
    ordered = sorted(samples, key=lambda s: (math.isnan(s.value), sign * s.value))
    return ordered[:k]


def aggregate(
    op: str, vector: Vector, grouping: Sequence[str], without: bool, param: float | str
) -> Vector:
    k = 0
    if op in ("topk", "bottomk"):
        k = _k(float(param))
        if k < 1:
            return []
    if op == "count_values":  # counted by value: the value is a label, one more to group by
        label = str(param)
        if not LABEL_NAME.match(label):
            raise EvalError(f'invalid label name "{label}"')
        vector = [Sample(_with(s.labels, label, format_value(s.value)), s.value) for s in vector]
        grouping = grouping if without else [*grouping, label]
        op = "count"
    groups: dict[Labels, _Group] = {}
    for s in vector:
        key = group_labels(s.labels, tuple(grouping), without)
        group = groups.get(key)
        if group is None:
            groups[key] = _Group(s, op)
        else:
            group.add(op, s)
    if op in ("topk", "bottomk"):
        return [s for g in groups.values() for s in _ranked(g.samples, k, op == "topk")]
    if op == "quantile":
        q = float(param)
        return [Sample(key, quantile(q, [s.value for s in g.samples])) for key, g in groups.items()]
    return [Sample(key, g.result(op)) for key, g in groups.items()]


def _with(labels: Labels, name: str, value: str) -> Labels:
    return tuple(sorted({**dict(labels), name: value}.items()))


def scalar_op(op: str, lhs: float, rhs: float) -> float:
    """One arithmetic or comparison operator on two floats, with Go's IEEE answers."""
    a, b = np.float64(lhs), np.float64(rhs)
    with np.errstate(all="ignore"):
        match op:
            case "+":
                return float(a + b)
            case "-":
                return float(a - b)
            case "*":
                return float(a * b)
            case "/":
                return float(a / b)
            case "%":
                return float(np.fmod(a, b))
            case "^":
                return float(np.power(a, b))
    return float(_compare(op, lhs, rhs))


def _compare(op: str, a: float, b: float) -> bool:
    match op:
        case "==":
            return a == b
        case "!=":
            return a != b
        case ">":
            return a > b
        case "<":
            return a < b
        case ">=":
            return a >= b
    return a <= b


def vector_scalar(
    op: str, vector: Vector, scalar: float, scalar_left: bool, return_bool: bool
) -> Vector:
    out = []
    comparison = op in COMPARISON
    for s in vector:
        lhs, rhs = (scalar, s.value) if scalar_left else (s.value, scalar)
        if comparison:
            keep = _compare(op, lhs, rhs)
            value = s.value
        else:
            keep, value = True, scalar_op(op, lhs, rhs)
        if return_bool:
            value, keep = float(keep), True
        if keep:
            drop = not comparison or return_bool
            out.append(Sample(without_name(s.labels) if drop else s.labels, value))
    return out


def _signature(labels: Labels, matching: Matching) -> Labels:
    if matching.on:
        return tuple(p for p in labels if p[0] in matching.labels)
    return tuple(p for p in labels if p[0] not in matching.labels and p[0] != NAME)


def set_operation(op: str, lhs: Vector, rhs: Vector, matching: Matching) -> Vector:
    right = {_signature(s.labels, matching) for s in rhs}
    if op == "and":
        return [s for s in lhs if _signature(s.labels, matching) in right]
    if op == "unless":
        return [s for s in lhs if _signature(s.labels, matching) not in right]
    left = {_signature(s.labels, matching) for s in lhs}
    return [*lhs, *(s for s in rhs if _signature(s.labels, matching) not in left)]


def _result_labels(many: Labels, one: Labels, op: str, matching: Matching) -> Labels:
    labels = dict(many)
    if op in ARITHMETIC:
        labels.pop(NAME, None)
    if not matching.group:
        kept = [k for k in labels if (k in matching.labels) == matching.on]
        labels = {k: labels[k] for k in kept}
    ones = dict(one)
    for name in matching.include:  # group_left(...)'s labels come from the "one" side
        if ones.get(name):
            labels[name] = ones[name]
        else:
            labels.pop(name, None)
    return tuple(sorted(labels.items()))


def vector_vector(
    op: str, lhs: Vector, rhs: Vector, return_bool: bool, matching: Matching
) -> Vector:
    """Elements paired by their matching labels: one to one, or many to one (group_left;
    group_right swaps the sides and swaps the operands back)."""
    if not lhs or not rhs:
        return []
    swapped = matching.group == "right"
    many, ones = (rhs, lhs) if swapped else (lhs, rhs)
    by_sig: dict[Labels, Sample] = {}
    for s in ones:
        sig = _signature(s.labels, matching)
        if sig in by_sig:
            raise EvalError(
                f"found duplicate series for the match group {format_labels(sig)} on the "
                f"{'left' if swapped else 'right'} hand-side of the operation: "
                f"[{format_labels(s.labels)}, {format_labels(by_sig[sig].labels)}];"
                "many-to-many matching not allowed: matching labels must be unique on one side"
            )
        by_sig[sig] = s
    matched: dict[Labels, set[Labels]] = {}
    out = []
    for s in many:
        sig = _signature(s.labels, matching)
        other = by_sig.get(sig)
        if other is None:
            continue
        left, right = (other.value, s.value) if swapped else (s.value, other.value)
        if op in COMPARISON:
            keep, value = _compare(op, left, right), left
        else:
            keep, value = True, scalar_op(op, left, right)
        if return_bool:
            value, keep = float(keep), True
        if not keep:
            continue
        labels = _result_labels(s.labels, other.labels, op, matching)
        if return_bool:
            labels = without_name(labels)
        seen = matched.setdefault(sig, set())
        if seen and not matching.group:
            raise EvalError(
                "multiple matches for labels: many-to-one matching must be explicit "
                "(group_left/group_right)"
            )
        if labels in seen:
            raise EvalError(
                "multiple matches for labels: grouping labels must ensure unique matches"
            )
        seen.add(labels)
        out.append(Sample(labels, value))
    return out
