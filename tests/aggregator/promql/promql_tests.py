"""Prometheus' PromQL test files read as promql/test.go reads them: `load <step>` blocks of
series (`metric{l="v"} 1 2+3x4 _ _x2 stale`), `clear`, and `eval[_fail|_ordered] instant at
<time> <query>` followed by the expected elements (or a scalar)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import promql_parser

from aggregator.promql.names import NAME, Labels

_TOKEN = re.compile(
    r"(?P<blank>_)(?:x(?P<blanks>\d+))?"
    r"|(?P<value>stale|[+-]?(?:Inf|NaN|[\d.]+(?:e[+-]?\d+)?))"
    r"(?:(?P<step>[+-](?:Inf|NaN|[\d.]+(?:e[+-]?\d+)?))?x(?P<times>\d+))?\Z",
    re.I,
)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
_EVAL = re.compile(r"eval(?:_(fail|ordered))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)\Z")
STALE = "stale"


def go_float(text: str) -> float:
    return float(text.replace("Inf", "inf").replace("NaN", "nan"))


def values(text: str) -> list[float | str | None]:
    """A value sequence: None for an omitted point, STALE for a stale marker."""
    out: list[float | str | None] = []
    for token in text.split():
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError(f"not a series value: {token!r}")
        if match["blank"]:
            out.extend([None] * (int(match["blanks"]) if match["blanks"] else 1))
        elif match["value"].lower() == STALE:
            out.append(STALE)
        elif match["times"] is None:
            out.append(go_float(match["value"]))
        else:
            value, step = go_float(match["value"]), go_float(match["step"] or "0")
            for _ in range(int(match["times"]) + 1):  # repeated adding, as Go's parser does
                out.append(value)
                value += step
    return out


def series_desc(line: str) -> tuple[Labels, str]:
    """`metric{a="b"} rest` as (labels, rest)."""
    if "{" in line:
        end, quoted, escaped = line.index("{"), False, False
        for end in range(line.index("{"), len(line)):
            char = line[end]
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = not quoted
            elif char == "}" and not quoted:
                break
        desc, rest = line[: end + 1], line[end + 1 :]
    else:
        desc, _, rest = re.sub(r"\s+", " ", line).partition(" ")
    name = _NAME.match(desc)
    labels = {NAME: name[0]} if name and name[0] else {}
    labels.update((k, json.loads(f'"{v}"')) for k, v in _PAIR.findall(desc[desc.find("{") :]))
    return tuple(sorted(labels.items())), rest.strip()


Loaded = dict[Labels, list[tuple[int, float | str]]]  # points (ms from the start, value)


@dataclass
class Eval:
    line: int
    query: str
    at_ms: int
    fail: bool
    ordered: bool
    loaded: Loaded
    scalar: float | None = None
    expected: list[tuple[Labels, float]] = field(default_factory=list)


def _ms(duration: str) -> int:
    if duration.strip("0") in ("", "s", "m", "h"):  # 0s, 0m: the parser takes positive ones
        return 0
    return promql_parser.parse_duration(duration) // timedelta(milliseconds=1)


def read(path: Path) -> list[Eval]:
    """Every eval of the file with the series loaded since the last `clear`."""
    lines = [
        ("" if s.strip().startswith("#") else s.strip()) for s in path.read_text().splitlines()
    ]
    evals: list[Eval] = []
    loaded: Loaded = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line == "clear":
            loaded = {}
        elif line.startswith("load"):
            step = _ms(line.split()[1])
            loaded = dict(loaded)  # the evals before keep what they saw
            while i < len(lines) and lines[i]:
                labels, rest = series_desc(lines[i])
                sequence = values(rest)
                loaded[labels] = [(n * step, v) for n, v in enumerate(sequence) if v is not None]
                i += 1
        elif (match := _EVAL.match(line)) is not None:
            at = _ms(match[2] or "0s")
            case = Eval(i, match[3], at, match[1] == "fail", match[1] == "ordered", loaded)
            while i < len(lines) and lines[i]:
                try:
                    case.scalar = go_float(lines[i])
                except ValueError:
                    labels, rest = series_desc(lines[i])
                    [value] = values(rest)
                    assert isinstance(value, float)
                    case.expected.append((labels, value))
                i += 1
            evals.append(case)
    return evals


def almost_equal(a: float, b: float) -> bool:
    """promql/test.go's comparison: 1e-6 relative."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    diff = abs(a - b)
    min_normal = 2.2250738585072014e-308
    if a == 0 or b == 0 or diff < min_normal:
        return diff < 1e-6 * min_normal
    return diff / (abs(a) + abs(b)) < 1e-6
