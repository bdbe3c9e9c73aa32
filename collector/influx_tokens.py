"""Line protocol's pieces: series keys with their escapes, field names and values, timestamps.

Each raises `ParseError` with its reason for a bad piece. Parsed keys are cached, so a repeated
`measurement,tags` prefix costs one dict lookup and yields the same `Series` objects.
"""

from __future__ import annotations

import math
import re
import sys

from collector.errors import ParseError
from storage.records import Series, Tags

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

FLOAT = rb"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_FLOAT_RE = re.compile(FLOAT)
_INT_RE = re.compile(rb"-?\d+")
_UNESCAPED_COMMA = re.compile(rb"(?<!\\),")
_UNESCAPED_EQUALS = re.compile(rb"(?<!\\)=")
_MEASUREMENT_ESCAPE = re.compile(rb"\\([, ])")
_TAG_ESCAPE = re.compile(rb"\\([,= ])")
_FIELD_ESCAPE = re.compile(rb'\\([,=" ])')

# Parsed `measurement,tags` prefixes: a repeated series costs one dict lookup. Bounded against
# floods of distinct series.
_KEYS: dict[bytes, Key] = {}
_KEYS_MAX = 100_000


class Key:
    """A parsed `measurement,tags` prefix (a plain class: a flood of new series builds one per
    line, and a frozen dataclass's __init__ costs several times as much)."""

    __slots__ = ("prefix", "series", "tags")

    def __init__(self, prefix: str, tags: Tags) -> None:
        self.prefix = prefix  # the measurement and a dot
        self.tags = tags
        # The series of each field seen with this prefix: built once, and the same object
        # every time, so the store's lookups hit on identity.
        self.series: dict[str, Series] = {}

    def series_of(self, name: str) -> Series:
        found = self.series.get(name)
        if found is None:
            # Interned, as the tag keys: the store keeps one copy of a name for all its series.
            found = self.series[name] = Series(sys.intern(self.prefix + name), self.tags)
        return found


def parse_key(raw: bytes, line: bytes) -> Key:
    key = _KEYS.get(raw)
    if key is None:
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        key = _KEYS[raw] = build_key(raw, line)
    return key


def build_key(raw: bytes, line: bytes) -> Key:
    """`measurement[,tag=value...]` checked as InfluxDB's scanKey checks it: a tag key may
    not begin with `=`, a tag value may (once), and neither may be empty."""
    return _plain_key(raw) or checked_key(raw, line)


def _plain_key(raw: bytes) -> Key | None:
    """The common key (no escapes, valid UTF-8, every tag `key=value` with neither empty and
    no `=` in the value) in one decode and string splits; None for any other, which
    `checked_key` parses or refuses with its reason. A flood of new series parses every key."""
    if b"\\" in raw:
        return None
    try:
        measurement, *parts = raw.decode("utf-8").split(",")
    except UnicodeDecodeError:
        return None
    if not measurement:
        return None
    tags: dict[str, str] = {}
    for part in parts:
        key, _, value = part.partition("=")
        if not key or not value or "=" in value or key in tags:
            return None
        tags[sys.intern(key)] = value
    return Key(measurement + ".", tuple(sorted(tags.items())))


def checked_key(raw: bytes, line: bytes) -> Key:
    """`_build_key` for any key, each rule checked in turn (raises `ParseError`)."""
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
        tag_key = sys.intern(_decode(raw_tag_key, "bad_tag", line))
        if tag_key in tags:
            raise ParseError("bad_tag", line, "duplicate tags")
        tags[tag_key] = _decode(raw_value, "bad_tag", line)
    return Key(measurement + ".", tuple(sorted(tags.items())))


def _unescaped_equals(raw: bytes, start: int, escaped: bool) -> int:
    """Where the first `=` from `start` that no backslash precedes is, or -1."""
    if not escaped:
        return raw.find(b"=", start)
    found = _UNESCAPED_EQUALS.search(raw, start)
    return -1 if found is None else found.start()


def field_name(raw: bytes, line: bytes) -> str:
    if not raw:
        raise ParseError("bad_field", line, "missing field key")
    if b"\\" in raw:
        raw = _FIELD_ESCAPE.sub(rb"\1", raw)
    return _decode(raw, "bad_field", line)


def field_value(raw: bytes, line: bytes) -> float | None:
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


def timestamp(raw: bytes, unit_ns: int, line: bytes) -> int:
    if not _INT_RE.fullmatch(raw):
        raise ParseError("bad_timestamp", line, "timestamp is not an integer")
    ts_ns = int(raw) * unit_ns
    if not MIN_TS_NS <= ts_ns <= MAX_TS_NS:
        raise ParseError("bad_timestamp", line, "timestamp out of range")
    return ts_ns


def match_end(pattern: re.Pattern[bytes], data: bytes, pos: int) -> int:
    """Where `pattern`, which matches the empty string, ends when matched at `pos`."""
    found = pattern.match(data, pos)
    return pos if found is None else found.end()


def _decode(raw: bytes, reason: str, line: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(reason, line, "not UTF-8") from None
