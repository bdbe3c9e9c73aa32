"""InfluxDB line protocol parser: `measurement[,tag=v...] field=v[,field=v...] [timestamp]`.

Each numeric field of a line is one point of series `measurement.field{tags}`; booleans are
1.0/0.0, string fields are skipped and counted. Bad lines are dropped with a reason
(`bad_measurement`, `bad_tag`, `no_field`, `bad_field`, `bad_value`, `non_finite`,
`bad_timestamp`) and the good lines of the body kept, as InfluxDB does for a partial write.

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

# The exact grammar. A backslash always takes the next byte with it while scanning (as
# InfluxDB's scanner does); only the escapable bytes of each part lose their backslash.
_KEY = re.compile(rb"[ \t]*((?:\\[^\n]?|[^ \n\\])+)")
_FIELDS = re.compile(rb'(?:"(?:\\.|[^"\\])*"|\\[^\n]|[^ \r\n"\\])+', re.DOTALL)
_FIELD = re.compile(rb'((?:\\.|[^,=\\"])*)=("(?:\\.|[^"\\])*"|[^,"]*)', re.DOTALL)
_TIMESTAMP = re.compile(rb" +([^ \r\n]+)")
_SEPARATOR = re.compile(rb" +")
_LINE_END = re.compile(rb" *\r?(?:\n|$)")
_BLANK_OR_COMMENT = re.compile(rb"[ \t]*(?:#[^\n]*)?\r?(?:\n|$)")
_MEASUREMENT_ESCAPE = re.compile(rb"\\([, ])")
_NAME_ESCAPE = re.compile(rb"\\([,= ])")

# Parsed `measurement,tags` prefixes: a repeated series costs one dict lookup. Bounded against
# floods of distinct series.
_KEYS: dict[bytes, _Key] = {}
_KEYS_MAX = 100_000
# Whole bodies' series, by their key and field-name sequence (see _body_shape); oldest evicted.
_SHAPES: dict[bytes, tuple[tuple[Series, ...], IndexArray]] = {}
_SHAPES_MAX = 64


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
    try:
        parsed_keys = [_parse_key(key, key) for key in key_positions]
        parsed_names = [_field_name(name) for name in name_positions]
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
    if any(line.count(b'"') % 2 for line in quoted):
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


def _field_name(raw: bytes) -> str:
    name = _decode(raw, "bad_field", raw)
    if not name:
        raise ParseError("bad_field", raw, "empty field key")
    return name


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
    limit = _INT64_MAX // unit_ns
    if ((ts > limit) | (ts < -limit)).any():
        return None
    return ts * unit_ns if unit_ns != 1 else ts


def _parse_exact(body: bytes, now_ns: int, unit_ns: int) -> ParseResult:
    points: list[tuple[Series, int, float]] = []
    dropped: Counter[str] = Counter()
    first_error = None
    strings = 0
    pos = 0
    while pos < len(body):
        try:
            pos, skipped = _parse_line(body, pos, now_ns, unit_ns, points)
            strings += skipped
        except _LineError as failure:
            dropped[failure.error.reason] += 1
            first_error = first_error or failure.error
            pos = failure.resume
    return ParseResult(Samples.from_points(points), dropped, first_error, strings)


class _LineError(Exception):
    """A bad line, and where the next line starts."""

    def __init__(self, error: ParseError, resume: int) -> None:
        self.error = error
        self.resume = resume


def _parse_line(
    body: bytes, pos: int, now_ns: int, unit_ns: int, points: list[tuple[Series, int, float]]
) -> tuple[int, int]:
    """Parse the line at `pos` into `points`; returns where the next line starts and how many
    string fields were skipped. A string field may hold newlines, so a line can span several."""
    skip = _BLANK_OR_COMMENT.match(body, pos)
    if skip is not None:
        return skip.end(), 0
    key_match = _KEY.match(body, pos)
    if key_match is None:
        raise _fail(body, pos, pos, "bad_measurement", "empty measurement")
    start = key_match.start(1)
    sep = _SEPARATOR.match(body, key_match.end())
    fields_match = None if sep is None else _FIELDS.match(body, sep.end())
    if sep is None or fields_match is None:
        raise _fail(body, start, key_match.end(), "no_field", "a line needs at least one field")
    stamp_match = _TIMESTAMP.match(body, fields_match.end())
    tail = fields_match.end() if stamp_match is None else stamp_match.end()
    end_match = _LINE_END.match(body, tail)
    if end_match is None:
        if body[tail : tail + 1] == b'"':
            raise _fail(body, start, tail, "bad_field", "unterminated string")
        raise _fail(body, start, tail, "bad_timestamp", "more than one token after the fields")
    line = body[start : end_match.end()].rstrip(b"\r\n")
    try:
        key = _parse_key(key_match.group(1), line)
        fields = _parse_fields(fields_match.group(), line)
        ts_ns = now_ns if stamp_match is None else _timestamp(stamp_match.group(1), unit_ns, line)
    except ParseError as error:
        raise _LineError(error, end_match.end()) from None
    strings = 0
    for name, value in fields:
        if value is None:
            strings += 1
        else:
            points.append((key.series_of(name), ts_ns, value))
    return end_match.end(), strings


def _fail(body: bytes, start: int, pos: int, reason: str, detail: str) -> _LineError:
    """A structural error at `pos`: the rest of that line is skipped."""
    end = body.find(b"\n", pos)
    end = len(body) if end < 0 else end
    return _LineError(ParseError(reason, body[start:end].rstrip(b"\r"), detail), end + 1)


def _parse_key(raw: bytes, line: bytes) -> _Key:
    key = _KEYS.get(raw)
    if key is None:
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        key = _KEYS[raw] = _build_key(raw, line)
    return key


def _build_key(raw: bytes, line: bytes) -> _Key:
    measurement_raw, *tag_parts = _split(raw, b",")
    measurement = _decode(_MEASUREMENT_ESCAPE.sub(rb"\1", measurement_raw), "bad_measurement", line)
    if not measurement:
        raise ParseError("bad_measurement", line, "empty measurement")
    tags: dict[str, str] = {}
    for part in tag_parts:
        pair = _split(part, b"=")
        if len(pair) != 2 or not pair[0] or not pair[1]:
            raise ParseError("bad_tag", line, "tags are `key=value`, both non-empty")
        key = _decode(_NAME_ESCAPE.sub(rb"\1", pair[0]), "bad_tag", line)
        if key in tags:
            raise ParseError("bad_tag", line, f"tag {key!r} given twice")
        tags[key] = _decode(_NAME_ESCAPE.sub(rb"\1", pair[1]), "bad_tag", line)
    return _Key(measurement + ".", tuple(sorted(tags.items())))


def _parse_fields(raw: bytes, line: bytes) -> list[tuple[str, float | None]]:
    """`k=v[,k=v...]` to (key, value) pairs; None for a string value."""
    fields = []
    pos = 0
    while True:
        match = _FIELD.match(raw, pos)
        if match is None or not match.group(1):
            raise ParseError("bad_field", line, "fields are `key=value`, key non-empty")
        name = _decode(_NAME_ESCAPE.sub(rb"\1", match.group(1)), "bad_field", line)
        fields.append((name, _field_value(match.group(2), line)))
        pos = match.end()
        if pos == len(raw):
            return fields
        if raw[pos : pos + 1] != b"," or pos + 1 == len(raw):
            raise ParseError("bad_field", line, "fields are separated by single commas")
        pos += 1


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
    stamp = int(raw)
    if abs(stamp) > _INT64_MAX // unit_ns:
        raise ParseError("bad_timestamp", line, "timestamp out of range")
    return stamp * unit_ns


def _split(raw: bytes, sep: bytes) -> list[bytes]:
    """Split on `sep` where it is not escaped: a byte after an odd run of backslashes is."""
    parts = raw.split(sep)
    if b"\\" not in raw:
        return parts
    joined: list[bytes] = []
    for part in parts:
        if joined and (len(joined[-1]) - len(joined[-1].rstrip(b"\\"))) % 2:
            joined[-1] += sep + part
        else:
            joined.append(part)
    return joined


def _decode(raw: bytes, reason: str, line: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(reason, line, "not UTF-8") from None
