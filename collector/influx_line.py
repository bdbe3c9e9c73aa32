r"""InfluxDB line protocol parser: `measurement[,tag=v...] field=v[,field=v...] [timestamp]`.

Each numeric field of a line is one point of series `measurement.field{tags}`; booleans are
1.0/0.0, string fields are skipped and counted. Bad lines are dropped with a reason
(`bad_measurement`, `bad_tag`, `no_field`, `bad_field`, `bad_value`, `non_finite`,
`bad_timestamp`, `key_too_long`) and the good lines of the body kept, as InfluxDB does for a
partial write.

The grammar is InfluxDB 1.x's (`models/points.go`, checked against its `points_test.go` in
tests/collector/test_influx_upstream_cases.py). In the measurement and tags a byte preceded
by a backslash is escaped, whatever precedes that backslash, and only the backslash before
`,` and space (and `=` in tags) is removed: `reg\\=ion` is the tag key `reg\=ion`. In the
fields a backslash takes the next byte with it, and is removed before `,`, `=`, space and
`"`. A quote opens a string only right after a field's `=`; elsewhere it is a literal byte.
A line without timestamp gets the body's time truncated to the precision.

Two paths give the same result. A body without backslashes or quotes (no escapes, no strings:
nearly every body), whose lines all have a timestamp or all lack one, takes the fast path: the
body is cut into columns with a few `bytes` calls, its shape checked with `translate`, each
distinct `measurement,tags` prefix parsed once (and cached across bodies), and values and
timestamps converted in bulk. A body it refuses is halved until the odd lines sit in small
parts, which the exact path parses, following the grammar line by line. Lines with string
fields go the exact way as a group. The pieces (keys, escapes, values) are `influx_tokens`',
the exact path `influx_exact`'s and the shape cache `influx_shapes`'.
"""

from __future__ import annotations

import re
from itertools import repeat

import numpy as np

from collector.decimal_column import parse_decimals
from collector.errors import ParseError
from collector.influx_exact import parse_exact
from collector.influx_shapes import body_shape
from collector.influx_tokens import FLOAT, MAX_TS_NS, MIN_TS_NS, field_value
from collector.parse_result import ParseResult, parse_in_parts, uniform_width
from storage.records import FloatArray, IntArray, Samples

PRECISION_NS: dict[str, int] = {
    "ns": 1,
    "n": 1,
    "us": 1_000,
    "u": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# The fast path. Columns are matched whole, space separated; atomic groups keep a failing match
# from backtracking. Its integers are short enough to always fit int64.
_NUMBER = rb"(?>" + FLOAT + rb"|-?\d{1,18}i)"
_NUMBER_COLUMN = re.compile(_NUMBER + rb"(?: " + _NUMBER + rb")*")
_INT_COLUMN = re.compile(rb"(?>-?\d+)(?: (?>-?\d+))*")
_DECIMAL_BYTES = b"0123456789.eE- "
_I = ord("i")
_NOT_SEPARATORS = bytes(b for b in range(256) if b not in b",=")
_FIELD_SEPARATORS = b"=,"
# A line of a body without backslashes whose strings all close on it, so it can be parsed
# apart from its neighbours.
_SELF_CONTAINED = re.compile(rb'[ \t\x00]*[^ \n]*(?: (?:="[^"\n]*"|=(?!")|[^=\n])*)?')


def parse_influx(body: bytes, now_ns: int, precision: str = "ns") -> ParseResult:
    """Parse a write body; a line without timestamp is `now_ns`. Raises ValueError for an
    unknown precision (`ns`/`n`, `us`/`u`, `ms`, `s`, `m`, `h`), never for bad lines."""
    unit_ns = PRECISION_NS.get(precision)
    if unit_ns is None:
        raise ValueError(f"unknown precision {precision!r}")
    now_ns -= now_ns % unit_ns  # as InfluxDB truncates a line's default time
    if b'"' not in body:
        return _parse_plain(body, now_ns, unit_ns)
    with_strings = _parse_with_strings(body, now_ns, unit_ns)
    return with_strings if with_strings is not None else parse_exact(body, now_ns, unit_ns)


def _parse_plain(body: bytes, now_ns: int, unit_ns: int) -> ParseResult:
    """A body without strings, so no value spans a newline."""
    return parse_in_parts(
        body,
        lambda part: _parse_fast(part, now_ns, unit_ns),
        lambda part: parse_exact(part, now_ns, unit_ns),
    )


def _parse_fast(body: bytes, now_ns: int, unit_ns: int) -> ParseResult | None:
    """The common body in bulk, or None when anything is not of the common form: every line
    `key fields` or every line `key fields timestamp`, single spaces, no escapes or strings."""
    body = body.rstrip(b"\n")
    if not body or b"\\" in body or b'"' in body or b"\r" in body or b"\t" in body:
        return None
    if b"\x00" in body:  # whitespace where it leads a line or a section
        return None
    if b"\n\n" in body or body[0] in b"# " or b"\n#" in body or b"\n " in body:
        return None
    count = body.count(b"\n") + 1
    width = uniform_width(body, count)
    if not width:
        return None
    tokens = body.replace(b"\n", b" ").split(b" ")
    keys, field_lists = tokens[0::width], tokens[1::width]
    # Fields are `k=v,k=v`: their separators, in order, must alternate `=` and `,`.
    all_fields = b",".join(field_lists)
    separators = all_fields.translate(None, _NOT_SEPARATORS)
    if separators != _FIELD_SEPARATORS * (len(separators) // 2) + b"=":
        return None
    pairs = all_fields.replace(b"=", b",").split(b",")
    names, values = pairs[0::2], pairs[1::2]
    single = len(names) == count  # one field per line: no per-line counts needed
    per_line = (
        None if single else np.array(list(map(bytes.count, field_lists, repeat(b"="))), np.int64)
    )
    shape = body_shape(keys, names, per_line)
    if shape is None:
        return None
    series, index = shape
    value_array = _fast_values(values)
    ts_ns = (
        _fast_timestamps(tokens[2::3], unit_ns) if width == 3 else np.full(count, now_ns, np.int64)
    )
    if value_array is None or ts_ns is None:
        return None
    return ParseResult(
        Samples(
            series, index, ts_ns if per_line is None else np.repeat(ts_ns, per_line), value_array
        )
    )


def _parse_with_strings(body: bytes, now_ns: int, unit_ns: int) -> ParseResult | None:
    """A body where a few lines hold string fields (Telegraf's `system` input does): those
    lines go the exact way, the others as a plain body. Points (and `first_error`) come grouped
    that way, not in line order. None when a string may span lines."""
    if b"\\" in body:
        return None
    lines = body.split(b"\n")
    quoted = [line for line in lines if b'"' in line]
    if any(_SELF_CONTAINED.fullmatch(line) is None for line in quoted):
        return None
    plain = _parse_plain(b"\n".join([line for line in lines if b'"' not in line]), now_ns, unit_ns)
    return ParseResult.merge([plain, parse_exact(b"\n".join(quoted), now_ns, unit_ns)])


def _fast_values(values: list[bytes]) -> FloatArray | None:
    joined = b" ".join(values)
    try:
        if not joined.translate(None, _DECIMAL_BYTES):
            # Over these bytes float() accepts exactly the grammar's floats; plain decimals
            # (nearly every value) are parsed at once, to the same bits.
            array = parse_decimals(joined, len(values))
            if array is None:
                array = np.array(list(map(float, values)), np.float64)
        elif _NUMBER_COLUMN.fullmatch(joined) is not None:
            array = np.array([float(v[:-1] if v[-1] == _I else v) for v in values], np.float64)
        else:
            array = np.array([field_value(value, value) for value in values], np.float64)
    except (ValueError, ParseError):
        return None
    return array if np.isfinite(array).all() else None


def _fast_timestamps(stamps: list[bytes], unit_ns: int) -> IntArray | None:
    joined = b" ".join(stamps)
    if _INT_COLUMN.fullmatch(joined) is None:
        return None
    # Integers checked, so numpy's strtoll reads them all; one beyond int64 saturates, and the
    # range check below refuses it as int() would have overflowed.
    ts = np.fromstring(joined, np.int64, sep=" ")
    if (
        len(ts) != len(stamps)
        or ((ts > MAX_TS_NS // unit_ns) | (ts < -(-MIN_TS_NS // unit_ns))).any()
    ):
        return None
    return ts * unit_ns if unit_ns != 1 else ts
