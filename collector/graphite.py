"""Graphite plaintext parser: `path[;tag=value...] value [timestamp]` lines to a sample batch.

Two paths give the same result. The fast path takes a chunk of plain printable-ASCII lines
that all have the same number of single-space separated fields, and converts each column in
bulk (`float`/`int` over the lists, series looked up once per distinct path). A chunk it
refuses is halved until the odd lines sit in small parts, which the exact path parses line by
line, dropping bad lines with a reason: `bad_format`, `bad_path`, `bad_tag`, `bad_value`,
`non_finite`, `bad_timestamp`.

A path `collectd.<host>.<rest>`, as collectd's write_graphite writes them, is the metric
`collectd.<rest>` with the tag `host`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from decimal import Decimal

import numpy as np

from collector.errors import ParseError
from collector.parse_result import ParseResult, parse_in_parts, uniform_width
from storage.records import NS_PER_S, Samples, Series

_NUMBER = re.compile(rb"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_NON_FINITE = frozenset((b"nan", b"inf", b"infinity"))
_MAX_TS_S = Decimal(2**63 - 1) / NS_PER_S
HOST_PREFIXES = frozenset({"collectd"})
"""Path prefixes whose next part is the host (`_with_host`)."""
# Graphite's tag rules: keys may not hold `;!^=`, values may not start with `~`.
_TAG_KEY_FORBIDDEN = frozenset(";!^=")

# The fast path takes chunks of printable ASCII lines only: no tab, no control character, so
# splitting on single spaces finds exactly the fields the exact path finds.
_PLAIN_BYTES = bytes(range(0x20, 0x7F)) + b"\n"
_MAX_TS_S_INT = int(_MAX_TS_S)

# Paths seen before, so a repeated series costs one dict lookup; bounded against floods of
# distinct names.
_SERIES: dict[bytes, Series] = {}
_SERIES_MAX = 100_000


def parse_graphite(data: bytes, now_ns: int) -> ParseResult:
    """Parse complete lines (the last may lack its newline); a missing or -1 timestamp is
    `now_ns`. Bad lines are dropped and counted, the good ones kept."""
    if data.endswith(b"\n"):
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
    if not data:
        return ParseResult(Samples.empty())
    return parse_in_parts(
        data, lambda part: _parse_fast(part, now_ns), lambda part: _parse_exact(part, now_ns)
    )


def parse_graphite_line(line: bytes, now_ns: int) -> tuple[Series, int, float]:
    """One non-blank line to (series, ts_ns, value); raises ParseError."""
    fields = line.split()
    if len(fields) not in (2, 3):
        raise ParseError("bad_format", line, "expected `path value [timestamp]`")
    series = _parse_path(fields[0], line)
    value = _parse_value(fields[1], line)
    ts_ns = _parse_timestamp(fields[2], line) if len(fields) == 3 else None
    return series, now_ns if ts_ns is None else ts_ns, value


def _parse_fast(data: bytes, now_ns: int) -> ParseResult | None:
    """The whole chunk in bulk, or None when some line is not of the common form."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if data.translate(None, _PLAIN_BYTES):
        return None
    count = data.count(b"\n") + 1
    width = uniform_width(data, count)  # every line `path value ts`, or every `path value`
    if not width:
        return None
    tokens = data.replace(b"\n", b" ").split(b" ")
    paths = tokens[0::width]
    values = tokens[1::width]
    stamps = tokens[2::width]
    # float() and int() read `1_0` as 10, the grammar does not.
    if b"_" in data and (b"_" in b"".join(values) or b"_" in b"".join(stamps)):
        return None
    try:
        value_array = np.array(list(map(float, values)), np.float64)
        if width == 3:
            seconds = np.array(list(map(int, stamps)), np.int64)
        positions = {path: i for i, path in enumerate(dict.fromkeys(paths))}
        series = [_series_of(path) for path in positions]
    except (ValueError, OverflowError, ParseError):
        return None
    if not np.isfinite(value_array).all():
        return None
    if width == 3:
        if ((seconds < 0) | (seconds > _MAX_TS_S_INT)).any():
            return None
        ts_ns = seconds * NS_PER_S
    else:
        ts_ns = np.full(count, now_ns, np.int64)
    index = np.fromiter(map(positions.__getitem__, paths), np.int32, count)
    return ParseResult(Samples(series, index, ts_ns, value_array))


def _series_of(path: bytes) -> Series:
    """The series of a raw path, parsed once; raises ParseError."""
    series = _SERIES.get(path)
    if series is None:
        if len(_SERIES) >= _SERIES_MAX:
            _SERIES.clear()
        series = _SERIES[path] = _parse_path(path, path)
    return series


def _parse_exact(data: bytes, now_ns: int) -> ParseResult:
    points = []
    dropped: Counter[str] = Counter()
    first_error = None
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            points.append(parse_graphite_line(line, now_ns))
        except ParseError as error:
            dropped[error.reason] += 1
            first_error = first_error or error
    return ParseResult(Samples.from_points(points), dropped, first_error)


def _parse_path(raw: bytes, line: bytes) -> Series:
    try:
        path = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("bad_path", line, "path is not UTF-8") from None
    name, *tag_parts = path.split(";")
    if not name:
        raise ParseError("bad_path", line, "empty path")
    if not name.isprintable():
        raise ParseError("bad_path", line, "control character in path")
    tags: dict[str, str] = {}
    for part in tag_parts:
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            raise ParseError("bad_tag", line, "tags are `;key=value`, both non-empty")
        if _TAG_KEY_FORBIDDEN.intersection(key) or value.startswith("~"):
            raise ParseError("bad_tag", line, "tag key holds one of ;!^= or value starts with ~")
        if not (key.isprintable() and value.isprintable()):
            raise ParseError("bad_tag", line, "control character in tag")
        tags[key] = value
    return _with_host(name, tags)


def _with_host(name: str, tags: dict[str, str]) -> Series:
    """`collectd.<host>.<rest>` (collectd's write_graphite) is `collectd.<rest>` tagged
    `host`, so its hosts sit on the Hosts board beside every other agent's."""
    prefix, _, rest = name.partition(".")
    host, dot, tail = rest.partition(".")
    if prefix in HOST_PREFIXES and dot and host and tail and "host" not in tags:
        return Series.of(f"{prefix}.{tail}", tags | {"host": host})
    return Series.of(name, tags)


def _parse_value(raw: bytes, line: bytes) -> float:
    if _NUMBER.fullmatch(raw) is None:
        if raw.lstrip(b"+-").lower() in _NON_FINITE:
            raise ParseError("non_finite", line, "NaN and infinity are not stored")
        raise ParseError("bad_value", line, "value is not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise ParseError("non_finite", line, "value overflows float64")
    return value


def _parse_timestamp(raw: bytes, line: bytes) -> int | None:
    """Seconds (int or decimal) to ns, exactly; None for -1, Graphite's `now`."""
    if _NUMBER.fullmatch(raw) is None:
        raise ParseError("bad_timestamp", line, "timestamp is not a number of seconds")
    seconds = Decimal(raw.decode("ascii"))
    if seconds == -1:
        return None
    if not 0 <= seconds <= _MAX_TS_S:
        raise ParseError("bad_timestamp", line, "timestamp out of range")
    return int(seconds * NS_PER_S)
