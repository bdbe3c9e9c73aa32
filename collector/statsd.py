"""StatsD line parser (etsy/statsd protocol plus DogStatsD tags): one line in, metrics out.

A line is `name:group[:group...][|#tags]`, each group `value|type[|@rate]`; every group of
the line shares the name and the tags. Types: `c` counter, `g` gauge (a leading sign means a
delta), `ms` timer, `h`/`d` DogStatsD histogram/distribution (aggregated as timers), `s` set.
Tags `k:v,k2` become (k, v) and (k2, ""). A line with any bad group is dropped whole, with
one of the reasons `bad_format`, `bad_name`, `bad_type`, `bad_value`, `non_finite`,
`bad_rate`, `bad_tag`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from collector.errors import ParseError
from storage.records import Series

COUNTER, GAUGE, TIMER, SET = 0, 1, 2, 3
KINDS = {b"c": COUNTER, b"g": GAUGE, b"ms": TIMER, b"h": TIMER, b"d": TIMER, b"s": SET}

NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_RATE = re.compile(rb"@(\d+\.?\d*|\.\d+)")
_SPACES = re.compile(rb"\s+")
# etsy's sanitizeKeyName: whitespace runs to `_`, `/` to `-`, then drop anything else odd.
_NOT_NAME = re.compile(rb"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True, slots=True)
class StatsdMetric:
    """One value of one line: `value` for numeric kinds, `member` for sets."""

    series: Series
    kind: int
    value: float = 0.0
    member: bytes = b""
    rate: float = 1.0
    delta: bool = False


def sanitize_name(raw: bytes) -> str:
    """The metric name etsy/statsd would store for `raw`."""
    name = _NOT_NAME.sub(b"", _SPACES.sub(b"_", raw).replace(b"/", b"-"))
    return name.decode("ascii")


def parse_tags(raw: bytes, line: bytes) -> tuple[tuple[str, str], ...]:
    """DogStatsD tags `k:v,k2` as sorted (key, value) pairs; the last value of a key wins."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("bad_tag", line, "tags are not UTF-8") from None
    if "|" in text:
        raise ParseError("bad_tag", line, "tags must come last")
    tags: dict[str, str] = {}
    for item in text.split(","):
        if not item:
            continue
        key, _, value = item.partition(":")
        if not key:
            raise ParseError("bad_tag", line, "empty tag key")
        tags[key] = value
    return tuple(sorted(tags.items()))


def parse_rate(raw: bytes, line: bytes) -> float:
    """A sample rate `@0.1`, which must lie in (0, 1]."""
    match = _RATE.fullmatch(raw)
    if match is None:
        raise ParseError("bad_rate", line, "expected @rate")
    rate = float(match[1])
    if not 0.0 < rate <= 1.0:
        raise ParseError("bad_rate", line, "rate must be in (0, 1]")
    return rate


def parse_number(raw: bytes, line: bytes) -> float:
    """A finite decimal number, as etsy accepts it (no nan, inf, hex or underscores)."""
    if NUMBER.fullmatch(raw) is None:
        raise ParseError("bad_value", line, "not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise ParseError("non_finite", line, "value out of range")
    return value


def parse_line(line: bytes) -> list[StatsdMetric]:
    """Every metric of one non-empty line (a trailing `\\r` is ignored); raises ParseError."""
    if line.endswith(b"\r"):
        line = line[:-1]
    body, sep, raw_tags = line.partition(b"|#")
    tags = parse_tags(raw_tags, line) if sep else ()
    raw_name, sep, rest = body.partition(b":")
    if not sep:
        raise ParseError("bad_format", line, "no `:` after the name")
    name = sanitize_name(raw_name)
    if not name:
        raise ParseError("bad_name", line, "empty name")
    series = Series(name, tags)
    return [_parse_group(series, group, line) for group in rest.split(b":")]


def _parse_group(series: Series, group: bytes, line: bytes) -> StatsdMetric:
    fields = group.split(b"|")
    if len(fields) < 2 or len(fields) > 3:
        raise ParseError("bad_format", line, "expected value|type[|@rate]")
    kind = KINDS.get(fields[1])
    if kind is None:
        raise ParseError("bad_type", line, "unknown type")
    rate = parse_rate(fields[2], line) if len(fields) == 3 else 1.0
    raw = fields[0]
    if kind == SET:
        if not raw:
            raise ParseError("bad_value", line, "empty set member")
        return StatsdMetric(series, kind, member=raw, rate=rate)
    value = parse_number(raw, line)
    delta = kind == GAUGE and raw[0] in b"+-"
    return StatsdMetric(series, kind, value, rate=rate, delta=delta)
