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
fields go the exact way as a group.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from collector.errors import ParseError
from collector.parse_result import ParseResult, parse_in_parts, uniform_width
from storage.records import FloatArray, IndexArray, IntArray, Samples, Series, Tags

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
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
# InfluxDB keeps the two lowest and the highest int64 nanoseconds for itself.
MIN_TS_NS = -(2**63) + 2
MAX_TS_NS = 2**63 - 2
# Longest series key InfluxDB takes: key, 4 separator bytes and field key (its MaxKeyLength).
MAX_KEY_BYTES = 65535
_BOOLEANS = {
    **dict.fromkeys((b"t", b"T", b"true", b"True", b"TRUE"), 1.0),
    **dict.fromkeys((b"f", b"F", b"false", b"False", b"FALSE"), 0.0),
}
_NON_FINITE = frozenset((b"nan", b"inf", b"infinity", b"-inf", b"-infinity", b"+inf", b"-nan"))

_FLOAT = rb"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_FLOAT_RE = re.compile(_FLOAT)
_INT_RE = re.compile(rb"-?\d+")

# The fast path. Columns are matched whole, space separated; atomic groups keep a failing match
# from backtracking. Its integers are short enough to always fit int64.
_NUMBER = rb"(?>" + _FLOAT + rb"|-?\d{1,18}i)"
_NUMBER_COLUMN = re.compile(_NUMBER + rb"(?: " + _NUMBER + rb")*")
_INT_COLUMN = re.compile(rb"(?>-?\d+)(?: (?>-?\d+))*")
_DECIMAL_BYTES = b"0123456789.eE- "
_I = ord("i")
_NOT_SEPARATORS = bytes(b for b in range(256) if b not in b",=")
_FIELD_SEPARATORS = b"=,"

# The exact grammar. A line ends at a newline outside a string; a string opens only right
# after `=` and must close, or its quote is a literal byte. In the key (up to the first space
# not preceded by a backslash) a backslash escapes the next byte whatever precedes it.
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
_UNESCAPED_COMMA = re.compile(rb"(?<!\\),")
_UNESCAPED_EQUALS = re.compile(rb"(?<!\\)=")
_MEASUREMENT_ESCAPE = re.compile(rb"\\([, ])")
_TAG_ESCAPE = re.compile(rb"\\([,= ])")
_FIELD_ESCAPE = re.compile(rb'\\([,=" ])')
# A line of a body without backslashes whose strings all close on it, so it can be parsed
# apart from its neighbours.
_SELF_CONTAINED = re.compile(rb'[ \t\x00]*[^ \n]*(?: (?:="[^"\n]*"|=(?!")|[^=\n])*)?')

# Parsed `measurement,tags` prefixes: a repeated series costs one dict lookup. Bounded against
# floods of distinct series.
_KEYS: dict[bytes, _Key] = {}
_KEYS_MAX = 100_000
# Whole bodies' series, by their key and field-name sequence (see _body_shape); oldest evicted.
_SHAPES: dict[bytes, tuple[tuple[Series, ...], IndexArray]] = {}
_SHAPES_MAX = 64
_SEEN_SHAPES: dict[int, None] = {}  # shapes seen once, by hash: cached when seen again
_SEEN_SHAPES_MAX = 4096


@dataclass(frozen=True, slots=True)
class _Key:
    prefix: str  # the measurement and a dot
    tags: Tags
    # The series of each field seen with this prefix: built once, and the same object every
    # time, so the store's lookups hit on identity.
    series: dict[str, Series] = field(default_factory=dict)

    def series_of(self, name: str) -> Series:
        found = self.series.get(name)
        if found is None:
            found = self.series[name] = Series(self.prefix + name, self.tags)
        return found


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
    return with_strings if with_strings is not None else _parse_exact(body, now_ns, unit_ns)


def _parse_plain(body: bytes, now_ns: int, unit_ns: int) -> ParseResult:
    """A body without strings, so no value spans a newline."""
    return parse_in_parts(
        body,
        lambda part: _parse_fast(part, now_ns, unit_ns),
        lambda part: _parse_exact(part, now_ns, unit_ns),
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
    shape = _body_shape(keys, names, per_line)
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


def _body_shape(
    keys: list[bytes], names: list[bytes], per_line: IntArray | None
) -> tuple[tuple[Series, ...], IndexArray] | None:
    """The series of a body's points and each point's position among them; None when a key
    or field name is bad. Agents send the same series in the same order at every interval, so
    shapes are cached by the exact key and name sequence: a repeated body pays one lookup
    instead of a dict operation per line."""
    # No key or name holds a newline, and the counts fix where each section ends.
    blob = b"\n".join(
        [
            b"%d %d" % (len(keys), len(names)),
            *keys,
            *names,
            b"" if per_line is None else per_line.tobytes(),
        ]
    )
    cached = _SHAPES.get(blob)
    if cached is not None:
        return cached
    key_positions = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    name_positions = {name: i for i, name in enumerate(dict.fromkeys(names))}
    if max(map(len, key_positions)) + max(map(len, name_positions)) + 4 > MAX_KEY_BYTES:
        return None
    try:
        parsed_keys = [_parse_key(key, key) for key in key_positions]
        parsed_names = [_field_name(name, name) for name in name_positions]
    except ParseError:
        return None
    # Series of point i: (key of its line, its field name), coded as one integer.
    key_ids = np.fromiter(map(key_positions.__getitem__, keys), np.int64, len(keys))
    name_ids = np.fromiter(map(name_positions.__getitem__, names), np.int64, len(names))
    if per_line is not None:
        key_ids = np.repeat(key_ids, per_line)
    names_count = len(parsed_names)
    series_codes, codes_index = _distinct(
        key_ids * names_count + name_ids, len(parsed_keys) * names_count
    )
    series = tuple(
        parsed_keys[code // names_count].series_of(parsed_names[code % names_count])
        for code in series_codes.tolist()
    )
    index = codes_index.astype(np.int32)
    index.setflags(write=False)  # shared by every body of this shape
    # Kept from its second body on: a flood of new series (every body a new shape) would fill
    # the cache with series no later body repeats, and keep them alive.
    fingerprint = hash(blob)
    if fingerprint not in _SEEN_SHAPES:
        if len(_SEEN_SHAPES) >= _SEEN_SHAPES_MAX:
            del _SEEN_SHAPES[next(iter(_SEEN_SHAPES))]
        _SEEN_SHAPES[fingerprint] = None
        return series, index
    if len(_SHAPES) >= _SHAPES_MAX:
        del _SHAPES[next(iter(_SHAPES))]
    _SHAPES[blob] = series, index
    return series, index


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
    return ParseResult.merge([plain, _parse_exact(b"\n".join(quoted), now_ns, unit_ns)])


def _distinct(codes: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """The distinct codes (all below `size`), and each code's position among them."""
    if size > 4 * len(codes) + 1024:
        distinct, index = np.unique(codes, return_inverse=True)
        return distinct, index
    # Few possible codes: a table instead of a sort.
    present = np.zeros(size, np.bool_)
    present[codes] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[codes]


def _field_name(raw: bytes, line: bytes) -> str:
    if not raw:
        raise ParseError("bad_field", line, "missing field key")
    if b"\\" in raw:
        raw = _FIELD_ESCAPE.sub(rb"\1", raw)
    return _decode(raw, "bad_field", line)


def _fast_values(values: list[bytes]) -> FloatArray | None:
    joined = b" ".join(values)
    try:
        if not joined.translate(None, _DECIMAL_BYTES):
            # Over these bytes float() accepts exactly the grammar's floats.
            array = np.array(list(map(float, values)), np.float64)
        elif _NUMBER_COLUMN.fullmatch(joined) is not None:
            array = np.array([float(v[:-1] if v[-1] == _I else v) for v in values], np.float64)
        else:
            array = np.array([_field_value(value, value) for value in values], np.float64)
    except (ValueError, ParseError):
        return None
    return array if np.isfinite(array).all() else None


def _fast_timestamps(stamps: list[bytes], unit_ns: int) -> IntArray | None:
    if _INT_COLUMN.fullmatch(b" ".join(stamps)) is None:
        return None
    try:
        ts = np.array(list(map(int, stamps)), np.int64)
    except OverflowError:
        return None
    if ((ts > MAX_TS_NS // unit_ns) | (ts < -(-MIN_TS_NS // unit_ns))).any():
        return None
    return ts * unit_ns if unit_ns != 1 else ts


def _parse_exact(body: bytes, now_ns: int, unit_ns: int) -> ParseResult:
    points: list[tuple[Series, int, float]] = []
    dropped: Counter[str] = Counter()
    first_error = None
    strings = 0
    pos = 0
    while pos < len(body):
        end = _end(_LINE, body, pos)
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
    line = line[_end(_WHITESPACE, line, 0) :]
    if not line or line[0] == 0x23:  # `#` starts a comment
        return 0
    key_end = _end(_KEY, line, 0)
    raw_key = line[:key_end]
    key = _parse_key(raw_key, line)
    if len(raw_key) > MAX_KEY_BYTES:
        raise ParseError("key_too_long", line, f"series key over {MAX_KEY_BYTES} bytes")
    if key_end == len(line):
        raise ParseError("no_field", line, "missing fields")
    pos = _end(_WHITESPACE, line, key_end)
    fields, pos = _parse_fields(line, pos)
    if max(map(len, (raw for raw, _ in fields))) + 4 + len(raw_key) > MAX_KEY_BYTES:
        raise ParseError("key_too_long", line, f"series key over {MAX_KEY_BYTES} bytes")
    ts_ns = now_ns
    if pos < len(line):  # a space after the fields
        pos = _end(_WHITESPACE, line, pos)
        stamp_end = _end(_STAMP, line, pos)
        if stamp_end > pos:
            ts_ns = _timestamp(line[pos:stamp_end], unit_ns, line)
            if _end(_SPACES, line, stamp_end) != len(line):
                raise ParseError("bad_timestamp", line, "more than one token after the fields")
    strings = 0
    for raw_name, value in fields:
        if value is None:
            strings += 1
        else:
            points.append((key.series_of(_field_name(raw_name, line)), ts_ns, value))
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
        key_end = _end(_FIELD_KEY, line, pos)
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
            value_end = _end(_PLAIN_VALUE, line, pos)
            if value_end == pos:
                raise ParseError("bad_field", line, "missing field value")
            fields.append((raw_key, _field_value(line[pos:value_end], line)))
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


def _parse_key(raw: bytes, line: bytes) -> _Key:
    key = _KEYS.get(raw)
    if key is None:
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        key = _KEYS[raw] = _build_key(raw, line)
    return key


def _build_key(raw: bytes, line: bytes) -> _Key:
    """`measurement[,tag=value...]` checked as InfluxDB's scanKey checks it: a tag key may
    not begin with `=`, a tag value may (once), and neither may be empty."""
    if not raw or raw[0] == 0x2C:  # `,`
        raise ParseError("bad_measurement", line, "missing measurement")
    escaped = b"\\" in raw
    measurement_raw, *tag_parts = _UNESCAPED_COMMA.split(raw) if escaped else raw.split(b",")
    if escaped:
        measurement_raw = _MEASUREMENT_ESCAPE.sub(rb"\1", measurement_raw)
    measurement = _decode(measurement_raw, "bad_measurement", line)
    tags: dict[str, str] = {}
    for part in tag_parts:
        if not part or part[0] == 0x3D:  # `=`
            raise ParseError("bad_tag", line, "missing tag key")
        equals = _unescaped_equals(part, 1, escaped)
        if equals < 0 or equals + 1 == len(part):
            raise ParseError("bad_tag", line, "missing tag value")
        raw_tag_key, raw_value = part[:equals], part[equals + 1 :]
        if _unescaped_equals(raw_value, 1, escaped) >= 0:
            raise ParseError("bad_tag", line, "invalid tag format")
        if escaped:
            raw_tag_key = _TAG_ESCAPE.sub(rb"\1", raw_tag_key)
            raw_value = _TAG_ESCAPE.sub(rb"\1", raw_value)
        tag_key = _decode(raw_tag_key, "bad_tag", line)
        if tag_key in tags:
            raise ParseError("bad_tag", line, "duplicate tags")
        tags[tag_key] = _decode(raw_value, "bad_tag", line)
    return _Key(measurement + ".", tuple(sorted(tags.items())))


def _unescaped_equals(raw: bytes, start: int, escaped: bool) -> int:
    """Where the first `=` from `start` that no backslash precedes is, or -1."""
    if not escaped:
        return raw.find(b"=", start)
    found = _UNESCAPED_EQUALS.search(raw, start)
    return -1 if found is None else found.start()


def _field_value(raw: bytes, line: bytes) -> float | None:
    if raw[:1] == b'"':
        return None
    boolean = _BOOLEANS.get(raw)
    if boolean is not None:
        return boolean
    suffix, digits = raw[-1:], raw[:-1]
    if suffix == b"i" and _INT_RE.fullmatch(digits):
        number = int(digits)
        if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
            raise ParseError("bad_value", line, "integer out of int64 range")
        return float(number)
    # Unsigned integers, as InfluxDB's points_test.go (with uint support on) and 2.x take them.
    if suffix == b"u" and digits.isdigit():
        number = int(digits)
        if number > _UINT64_MAX:
            raise ParseError("bad_value", line, "unsigned integer out of uint64 range")
        return float(number)
    if _FLOAT_RE.fullmatch(raw):
        value = float(raw)
        if not math.isfinite(value):
            raise ParseError("non_finite", line, "value overflows float64")
        return value
    if raw.lower() in _NON_FINITE:
        raise ParseError("non_finite", line, "NaN and infinity are not stored")
    raise ParseError("bad_value", line, "not a number, boolean or string")


def _timestamp(raw: bytes, unit_ns: int, line: bytes) -> int:
    if not _INT_RE.fullmatch(raw):
        raise ParseError("bad_timestamp", line, "timestamp is not an integer")
    ts_ns = int(raw) * unit_ns
    if not MIN_TS_NS <= ts_ns <= MAX_TS_NS:
        raise ParseError("bad_timestamp", line, "timestamp out of range")
    return ts_ns


def _end(pattern: re.Pattern[bytes], data: bytes, pos: int) -> int:
    """Where `pattern`, which matches the empty string, ends when matched at `pos`."""
    found = pattern.match(data, pos)
    return pos if found is None else found.end()


def _decode(raw: bytes, reason: str, line: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(reason, line, "not UTF-8") from None
