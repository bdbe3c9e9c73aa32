"""histogram_quantile, label_replace and absent's labels, as promql/functions.go and
promql/quantile.go compute them."""

from __future__ import annotations

import math
import re

from aggregator.promql.names import LABEL_NAME, NAME, Labels, label_value
from aggregator.promql.series import EvalError, Sample, Vector
from aggregator.promql.syntax import LabelMatcher, compile_regex

_GO_FLOAT = re.compile(r"[+-]?(inf|infinity|nan|(\d+\.?\d*|\.\d+)(e[+-]?\d+)?)\Z", re.I)


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """The q-quantile of cumulative (upper bound, count) buckets, interpolated linearly."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets, key=lambda b: b[0])
    if not math.isinf(buckets[-1][0]) or buckets[-1][0] < 0:
        return math.nan
    merged: list[list[float]] = []
    for bound, count in buckets:  # the same bound twice (an le of 1 and 1.0): one bucket
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    highest = merged[0][1]
    for bucket in merged[1:]:  # counts that fall (a scrape between buckets) are raised
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


def histogram_quantile(q: float, vector: Vector) -> Vector:
    """Per series but for `le`: the quantile of its buckets, labelled without `le` and name."""
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for s in vector:
        le = label_value(s.labels, "le")
        if not _GO_FLOAT.match(le):
            continue  # no bucket label, or not a number: skipped, as Prometheus does
        key = tuple(p for p in s.labels if p[0] != "le")  # the name too: one histogram each
        groups.setdefault(key, []).append((float(le), s.value))
    return [
        Sample(tuple(p for p in key if p[0] != NAME), bucket_quantile(q, buckets))
        for key, buckets in groups.items()
    ]


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's Regexp.ExpandString: `$1`, `${1}`, `$name`, `${name}`, `$$`; unknown groups are ''."""
    out, i = [], 0
    while i < len(template):
        char = template[i]
        if char != "$" or i + 1 == len(template):
            out.append(char)
            i += 1
            continue
        if template[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        braced = template[i + 1] == "{"
        name_match = re.compile(r"\{([a-zA-Z0-9_]+)\}" if braced else r"([a-zA-Z0-9_]+)").match(
            template, i + 1
        )
        if name_match is None:
            out.append(char)
            i += 1
            continue
        name = name_match[1]
        try:
            group = match.group(int(name) if name.isdigit() else name)
        except IndexError:
            group = None
        out.append(group or "")
        i = name_match.end()
    return "".join(out)


def label_replace(vector: Vector, dst: str, replacement: str, src: str, regex: str) -> Vector:
    try:
        pattern = compile_regex(regex)
    except ValueError as error:
        raise EvalError(f"invalid regular expression in label_replace(): {regex}") from error
    if not LABEL_NAME.match(dst):
        raise EvalError(f"invalid destination label name in label_replace(): {dst}")
    out = []
    for s in vector:
        match = pattern.match(label_value(s.labels, src))
        if match is None:
            out.append(s)
            continue
        value = _expand(replacement, match)
        labels = dict(s.labels)
        labels.pop(dst, None)
        if value:
            labels[dst] = value
        out.append(Sample(tuple(sorted(labels.items())), s.value))
    return out


def absent_labels(matchers: tuple[LabelMatcher, ...]) -> Labels:
    """absent(x{a="1"})'s labels: each label an `=` matcher names once (not the name)."""
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for m in matchers:
        if m.name == NAME:
            continue
        if m.op == "=" and m.name not in seen:
            labels[m.name] = m.value
            seen.add(m.name)
        else:
            labels.pop(m.name, None)
    return tuple(sorted(labels.items()))


def label_join(vector: Vector, dst: str, separator: str, sources: list[str]) -> Vector:
    """dst set to the sources' values joined by separator (an empty result: no dst label)."""
    for name in [*sources, dst]:
        if not LABEL_NAME.match(name):
            raise EvalError(f"invalid label name in label_join(): {name}")
    out = []
    for s in vector:
        labels = dict(s.labels)
        value = separator.join(labels.get(name, "") for name in sources)
        labels.pop(dst, None)
        if value:
            labels[dst] = value
        out.append(Sample(tuple(sorted(labels.items())), s.value))
    return out


def sort(vector: Vector, descending: bool) -> Vector:
    """By value, NaN last either way; the names stay."""
    sign = -1.0 if descending else 1.0
    return sorted(vector, key=lambda s: (math.isnan(s.value), sign * s.value))
