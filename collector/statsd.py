"""StatsD line parser (etsy/statsd protocol plus DogStatsD tags): one line in, metrics out.

A line is `name:group[:group...][|#tags]`, each group `value|type[|@rate]`; every group of
the line shares the name and the tags. Types: `c` counter, `g` gauge (a leading sign means a
delta), `ms` timer, `h`/`d` DogStatsD histogram/distribution (aggregated as timers), `s` set.
A name is cleaned as etsy/statsd 0.9 and later clean it (whitespace to `_`, `/` to `-`, other
bytes but `A-Za-z0-9_.-;=` dropped) and may carry Graphite tags, `name;k=v;k2=v2`. DogStatsD
tags `k:v,k2` become (k, v) and (k2, ""), a `;` in them `_` as etsy does; they win over a
Graphite tag of the same key. A sample rate is any positive number (etsy takes `@2`, a value
worth half a count). A line with any bad group is dropped whole, with one of the reasons
`bad_format`, `bad_name`, `bad_type`, `bad_value`, `non_finite`, `bad_rate`, `bad_tag`.

Checked against etsy/statsd v0.10.2's own tests and stats.js in
tests/collector/test_statsd_upstream_cases.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from collector.errors import ParseError
from storage.records import Series

COUNTER, GAUGE, TIMER, SET = 0, 1, 2, 3
KINDS = {b"c": COUNTER, b"g": GAUGE, b"ms": TIMER, b"h": TIMER, b"d": TIMER, b"s": SET}

# etsy's timers take no negative value (`Number(value) >= 0`, so `-0` passes); DogStatsD's
# histograms and distributions may.
NON_NEGATIVE_TYPES = frozenset((b"ms",))

NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# etsy takes any number not starting with `-` after the `@`. A rate of 0 (infinite weight) or
# one that is not a plain decimal is refused here: etsy would count infinity or, as its stats.js
# reads the leading `[\d.]+` only, crash on `@+1` and count `@2e-1` as a rate of 2.
_RATE = re.compile(rb"@((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_SPACES = re.compile(rb"\s+")
# etsy's sanitizeKeyName (0.9 on; before, `;` and `=` were dropped too): whitespace runs to
# `_`, `/` to `-`, then drop anything else odd.
_NOT_NAME = re.compile(rb"[^A-Za-z0-9_.\-;=]")


@dataclass(frozen=True, slots=True)
class StatsdMetric:
    """One value of one line: `value` for numeric kinds, `member` for sets."""

    series: Series
    kind: int
    value: float = 0.0
    member: bytes = b""
    rate: float = 1.0
    delta: bool = False
    non_negative: bool = False  # its type takes no negative value (etsy's `ms`)


def sanitize_name(raw: bytes) -> str:
    """The metric key etsy/statsd would store for `raw`, Graphite tags included."""
    name = _NOT_NAME.sub(b"", _SPACES.sub(b"_", raw).replace(b"/", b"-"))
    return name.decode("ascii")


def parse_name(raw: bytes, line: bytes) -> tuple[str, dict[str, str]]:
    """The cleaned name and its Graphite tags: `b ar;k=v` is `b_ar` with tag k=v."""
    name, *parts = sanitize_name(raw).split(";")
    if not name:
        raise ParseError("bad_name", line, "empty name")
    tags: dict[str, str] = {}
    for part in parts:
        key, _, value = part.partition("=")
        if not key or not value:
            raise ParseError("bad_tag", line, "Graphite tags are `;key=value`, both non-empty")
        tags[key] = value
    return name, tags


def parse_tags(raw: bytes, line: bytes) -> dict[str, str]:
    """DogStatsD tags `k:v,k2` as {key: value}; the last value of a key wins. A `;` becomes
    `_`, as etsy turns it (it separates Graphite tags)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("bad_tag", line, "tags are not UTF-8") from None
    if "|" in text:
        raise ParseError("bad_tag", line, "tags must come last")
    tags: dict[str, str] = {}
    for item in text.replace(";", "_").split(","):
        if not item:
            continue
        key, _, value = item.partition(":")
        if not key:
            raise ParseError("bad_tag", line, "empty tag key")
        tags[key] = value
    return tags


def parse_rate(raw: bytes, line: bytes) -> float:
    """A sample rate `@0.1`: any positive finite number (`@2` counts each value as half)."""
    match = _RATE.fullmatch(raw)
    if match is None:
        raise ParseError("bad_rate", line, "expected @rate")
    rate = float(match[1])
    if not 0.0 < rate < math.inf:
        raise ParseError("bad_rate", line, "rate must be positive and finite")
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
    raw_name, name_sep, rest = body.partition(b":")
    if not name_sep:
        raise ParseError("bad_format", line, "no `:` after the name")
    name, tags = parse_name(raw_name, line)
    if sep:
        tags |= parse_tags(raw_tags, line)
    series = Series.of(name, tags)
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
    non_negative = fields[1] in NON_NEGATIVE_TYPES
    if non_negative and value < 0:
        raise ParseError("bad_value", line, "a timer takes no negative value")
    delta = kind == GAUGE and raw[0] in b"+-"
    return StatsdMetric(series, kind, value, rate=rate, delta=delta, non_negative=non_negative)
