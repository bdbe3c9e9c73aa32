"""The line protocol parser's exact path: InfluxDB's grammar followed line by line.

A line ends at a newline outside a string; a string opens only right after `=` and must close,
or its quote is a literal byte. In the key (up to the first space not preceded by a backslash)
a backslash escapes the next byte whatever precedes it. A bad line is dropped and counted by
reason, the others kept.
"""

from __future__ import annotations

import re
from collections import Counter

from collector.errors import ParseError
from collector.influx_tokens import MAX_KEY_BYTES, field_name, field_value, match_end, parse_key
from collector.influx_tokens import timestamp as parse_timestamp
from collector.parse_result import ParseResult
from storage.records import Samples, Series

_WHITESPACE = re.compile(rb"[ \t\x00]*")
_KEY_PART = rb"(?:[^ \n\\]|\\++[^\n]?)*+"
_LINE = re.compile(
    rb"[ \t\x00]*" + _KEY_PART + rb'(?: (?>="(?:\\[\s\S]|[^"\\])*+"|\\[^\n]?|[^\n\\])*+)?'
)
_KEY = re.compile(_KEY_PART)
_FIELD_KEY = re.compile(rb"(?:\\[\s\S]?|[^\\=, ])*+")
_STRING = re.compile(rb'"(?:\\[\s\S]|[^"\\])*+"')
_PLAIN_VALUE = re.compile(rb"[^, ]*+")
_STAMP = re.compile(rb"[^ ]*+")
_SPACES = re.compile(rb" *+")


def parse_exact(body: bytes, now_ns: int, unit_ns: int) -> ParseResult:
    points: list[tuple[Series, int, float]] = []
    dropped: Counter[str] = Counter()
    first_error = None
    strings = 0
    pos = 0
    while pos < len(body):
        end = match_end(_LINE, body, pos)
        try:
            strings += _parse_line(body[pos:end], now_ns, unit_ns, points)
        except ParseError as error:
            dropped[error.reason] += 1
            first_error = first_error or error
        pos = end + 1
    return ParseResult(Samples.from_points(points), dropped, first_error, strings)


def _parse_line(
    line: bytes, now_ns: int, unit_ns: int, points: list[tuple[Series, int, float]]
) -> int:
    """Parse one line (a string field may hold newlines) into `points`; returns how many
    string fields were skipped. Raises ParseError, adding nothing, for a bad line."""
    if line.endswith(b"\r"):
        line = line[:-1]
    line = line[match_end(_WHITESPACE, line, 0) :]
    if not line or line[0] == 0x23:  # `#` starts a comment
        return 0
    key_end = match_end(_KEY, line, 0)
    raw_key = line[:key_end]
    key = parse_key(raw_key, line)
    if len(raw_key) > MAX_KEY_BYTES:
        raise ParseError("key_too_long", line, f"series key over {MAX_KEY_BYTES} bytes")
    if key_end == len(line):
        raise ParseError("no_field", line, "missing fields")
    pos = match_end(_WHITESPACE, line, key_end)
    fields, pos = _parse_fields(line, pos)
    if max(map(len, (raw for raw, _ in fields))) + 4 + len(raw_key) > MAX_KEY_BYTES:
        raise ParseError("key_too_long", line, f"series key over {MAX_KEY_BYTES} bytes")
    ts_ns = now_ns
    if pos < len(line):  # a space after the fields
        pos = match_end(_WHITESPACE, line, pos)
        stamp_end = match_end(_STAMP, line, pos)
        if stamp_end > pos:
            ts_ns = parse_timestamp(line[pos:stamp_end], unit_ns, line)
            if match_end(_SPACES, line, stamp_end) != len(line):
                raise ParseError("bad_timestamp", line, "more than one token after the fields")
    strings = 0
    for raw_name, value in fields:
        if value is None:
            strings += 1
        else:
            points.append((key.series_of(field_name(raw_name, line)), ts_ns, value))
    return strings


def _parse_fields(line: bytes, pos: int) -> tuple[list[tuple[bytes, float | None]], int]:
    """The `k=v[,k=v...]` section at `pos` as (raw key, value) pairs, None for a string, and
    where it ends (at a space or the end of the line). As InfluxDB scans it: a bad value fails
    the line at once, a key without `=` once the section is read."""
    fields: list[tuple[bytes, float | None]] = []
    keyless = False
    if pos == len(line):
        raise ParseError("bad_field", line, "invalid field format")
    while True:
        key_end = match_end(_FIELD_KEY, line, pos)
        raw_key = line[pos:key_end]
        pos = key_end
        separator = line[pos : pos + 1]
        if separator != b"=":
            keyless = True
            if separator == b",":
                pos += 1
                continue
            break
        if not raw_key:
            raise ParseError("bad_field", line, "missing field key")
        pos += 1
        if line[pos : pos + 1] == b'"':
            string = _STRING.match(line, pos)
            if string is None:
                raise ParseError("bad_field", line, "unbalanced quotes")
            fields.append((raw_key, None))
            pos = string.end()
        else:
            value_end = match_end(_PLAIN_VALUE, line, pos)
            if value_end == pos:
                raise ParseError("bad_field", line, "missing field value")
            fields.append((raw_key, field_value(line[pos:value_end], line)))
            pos = value_end
        separator = line[pos : pos + 1]
        if separator == b",":
            pos += 1
        elif separator in (b" ", b""):
            break
        else:
            raise ParseError("bad_field", line, "a string value is followed by more bytes")
    if keyless or not fields:
        raise ParseError("bad_field", line, "invalid field format")
    return fields, pos
