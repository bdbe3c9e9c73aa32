"""Hypothesis strategies for the protocol parsers, and tables of known-bad lines by reason."""

from __future__ import annotations

from hypothesis import strategies as st

from storage.records import NS_PER_S, Series

# ---------------------------------------------------------------------------------------------
# Graphite plaintext
# ---------------------------------------------------------------------------------------------

_GRAPHITE_NAME_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ";") + "éß€"
_GRAPHITE_TAG_KEY_CHARS = "".join(c for c in _GRAPHITE_NAME_CHARS if c not in "!^=")

graphite_names = st.text(_GRAPHITE_NAME_CHARS, min_size=1, max_size=40)
graphite_tags = st.dictionaries(
    st.text(_GRAPHITE_TAG_KEY_CHARS, min_size=1, max_size=10),
    st.text(_GRAPHITE_NAME_CHARS, min_size=1, max_size=10).filter(lambda v: v[0] != "~"),
    max_size=3,
)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
graphite_seconds = st.integers(0, 9_000_000_000)


@st.composite
def graphite_lines(draw: st.DrawFn, now_ns: int) -> tuple[bytes, tuple[Series, int, float]]:
    """A valid Graphite line and the point it must parse to."""
    name = draw(graphite_names)
    tags = draw(graphite_tags)
    value = draw(finite_floats)
    path = name + "".join(f";{k}={v}" for k, v in tags.items())
    stamp = draw(st.one_of(st.none(), st.just(-1), graphite_seconds))
    line = f"{path} {value!r}" + ("" if stamp is None else f" {stamp}")
    ts_ns = now_ns if stamp in (None, -1) else stamp * NS_PER_S
    return line.encode(), (Series.of(name, tags), ts_ns, value)


# Lines that look like Graphite: every token kind, separators and the odd bytes the fast path
# must hand over to the exact one.
graphite_noise_lines = st.text("ab.;=~!^01 -+eE_.naifNI\t\r\x00é", max_size=24).map(str.encode)


def graphite_token_lines(valid_only: bool) -> st.SearchStrategy[bytes]:
    """Lines of three plain tokens (only valid ones, or any), so chunks reach the fast path."""
    paths = [b"a", b"a.b", b"x-y_z", b"a;k=v"]
    values = [b"1", b"-2.5", b"1e3", b".5", b"+1"]
    stamps = [b"1", b"0", b"1700000000", b"-1", b"1.5"]
    if not valid_only:
        paths += [b"a;k", b"", b"a\tb"]
        values += [b"1_0", b"nan", b"1e999", b"x", b""]
        stamps += [b"99999999999", b"", b"1_0"]
    return st.tuples(st.sampled_from(paths), st.sampled_from(values), st.sampled_from(stamps)).map(
        b" ".join
    )


BAD_GRAPHITE_LINES: dict[str, list[bytes]] = {
    "bad_format": [b"just.a.path", b"a 1 2 3", b"a\t1\t2\t3\t4"],
    "bad_path": [b";k=v 1 2", b"a\x00b 1 2", b"\xff\xfe 1 2", b"a\x1bb 1"],
    "bad_tag": [b"a;k 1 2", b"a;=v 1", b"a;k= 1", b"a;k!=v 1", b"a;k=~v 1", b"a;k=v; 1"],
    "bad_value": [b"a one 2", b"a 1_000 2", b"a 0x10 2", b"a 1.2.3 2", b"a - 2", b"a 1e 2"],
    "non_finite": [b"a nan 2", b"a NaN", b"a inf 2", b"a -Infinity 2", b"a 1e999 2"],
    "bad_timestamp": [b"a 1 yesterday", b"a 1 -5", b"a 1 1e30", b"a 1 99999999999", b"a 1 nan"],
}

# ---------------------------------------------------------------------------------------------
# InfluxDB line protocol
# ---------------------------------------------------------------------------------------------

_INFLUX_CHARS = st.characters(codec="utf-8", exclude_characters="\n\r\t", exclude_categories=["Cs"])


def _influx_name(
    escapable: str, extra_excluded: str = "", *, backslash_escapes: bool = False
) -> st.SearchStrategy[str]:
    """A name line protocol can carry: no trailing backslash (it would escape the separator
    after it) and no leading NUL (whitespace to InfluxDB). In the measurement and tags a
    backslash may stand anywhere else (`\\,` reads as a backslash and a comma); a field key's
    backslash takes the next byte with it (`backslash_escapes`), so there it may not stand
    before an escapable byte or another backslash."""
    return st.text(_INFLUX_CHARS, min_size=1, max_size=12).filter(
        lambda s: (
            not s.endswith("\\")
            and s[0] != "\x00"
            and not (
                backslash_escapes
                and any(s[i] == "\\" and s[i + 1] in escapable + "\\" for i in range(len(s) - 1))
            )
            and not any(c in extra_excluded for c in s)
        )
    )


def influx_escape(text: str, escapable: str) -> str:
    for char in escapable:
        text = text.replace(char, "\\" + char)
    return text


INFLUX_BOOLEANS = {"t": 1.0, "T": 1.0, "true": 1.0, "True": 1.0, "TRUE": 1.0}
INFLUX_BOOLEANS |= {"f": 0.0, "F": 0.0, "false": 0.0, "False": 0.0, "FALSE": 0.0}

# (text in the line, value expected; None for a string field, which is skipped)
influx_field_values: st.SearchStrategy[tuple[str, float | None]] = st.one_of(
    finite_floats.map(lambda v: (repr(v), v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: (f"{v}i", float(v))),
    st.integers(0, 2**64 - 1).map(lambda v: (f"{v}u", float(v))),
    st.sampled_from(sorted(INFLUX_BOOLEANS.items())),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10).map(
        lambda v: ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"', None)
    ),
)


@st.composite
def influx_lines(
    draw: st.DrawFn, now_ns: int, unit_ns: int = 1
) -> tuple[bytes, list[tuple[Series, int, float]], int]:
    """A valid line, the points it must parse to, and how many string fields it skips."""
    measurement = draw(_influx_name(", ").filter(lambda s: s[0] != "#"))
    tags = draw(st.dictionaries(_influx_name(",= "), _influx_name(",= "), max_size=3))
    # A quote in a field key is a literal byte; only `\"` would lose its backslash.
    field_keys = _influx_name(',= "', backslash_escapes=True)
    fields = draw(st.dictionaries(field_keys, influx_field_values, min_size=1, max_size=4))
    # InfluxDB's time range: int64 nanoseconds but the two lowest and the highest.
    stamp = draw(
        st.one_of(st.none(), st.integers(-((2**63 - 2) // unit_ns), (2**63 - 2) // unit_ns))
    )
    key = influx_escape(measurement, ", ") + "".join(
        f",{influx_escape(k, ',= ')}={influx_escape(v, ',= ')}" for k, v in tags.items()
    )
    field_text = ",".join(f"{influx_escape(k, ',= ')}={text}" for k, (text, _) in fields.items())
    line = f"{key} {field_text}" + ("" if stamp is None else f" {stamp}")
    ts_ns = now_ns - now_ns % unit_ns if stamp is None else stamp * unit_ns
    points = [
        (Series.of(f"{measurement}.{k}", tags), ts_ns, value)
        for k, (_, value) in fields.items()
        if value is not None
    ]
    strings = sum(1 for _, value in fields.values() if value is None)
    return line.encode(), points, strings


def influx_token_lines(valid_only: bool) -> st.SearchStrategy[bytes]:
    """Lines of plain tokens (only valid ones, or any), so that bodies reach the fast path."""
    keys = [b"cpu", b"cpu,host=a", b"m,b=2,a=1", b"disk.io,dev=sda"]
    fields = [b"v=1", b"v=1.5,w=2i", b"x=-3e2,y=t,z=4u", b"u=FALSE", b"a=.5", b'v=2,s="x y, z=1"']
    stamps = [b" 1", b" -5", b" 1700000000000000000", b""]
    if not valid_only:
        keys += [b"", b"cpu,", b"cpu,host", b"cpu,=a", b"#c", b"cpu,a=1,a=2", b"\xff"]
        fields += [b"", b"v", b"=1", b"v=", b"v=1,", b"v=nan", b"v=1e999", b"v=1_0", b"v=+1"]
        fields += [b"v=99999999999999999999i", b"v=-1u", b"v==1", b"v=1=2", b"v=1.5i", b'v="s"']
        stamps += [b" 1.5", b" x", b" 99999999999999999999", b" 1 2", b"  1", b" "]
    return st.tuples(st.sampled_from(keys), st.sampled_from(fields), st.sampled_from(stamps)).map(
        lambda parts: parts[0] + b" " + parts[1] + parts[2]
    )


BAD_INFLUX_LINES: dict[str, list[bytes]] = {
    "bad_measurement": [b",host=a v=1", b"\xff\xfe v=1"],
    "bad_tag": [b"cpu,host v=1", b"cpu,host= v=1", b"cpu,=a v=1", b"cpu, v=1", b"cpu,a=1,a=2 v=1"],
    "no_field": [b"cpu", b"cpu,host=a", b"=", b"cpu,host=="],
    # As InfluxDB reads them: a space with nothing after it, or a key without value.
    "bad_field": [b"cpu v", b"cpu =1", b"cpu v=1,", b"cpu v=1,,w=2", b'cpu v="open', b"cpu "],
    "bad_value": [
        b"cpu v=one",
        b"cpu v=1_0",
        b"cpu v=+1",
        b"cpu v=1.5i",
        b"cpu v=-1u",
        b"cpu v=1=2",
    ],
    "non_finite": [b"cpu v=nan", b"cpu v=-Inf", b"cpu v=1e999", b"cpu v=NaN"],
    "bad_timestamp": [
        b"cpu v=1 1.5",
        b"cpu v=1 x",
        b"cpu v=1 1 2",
        b"cpu v=1 99999999999999999999",
    ],
}
BAD_INFLUX_LINES["bad_value"] += [b"cpu v=9223372036854775808i", b"cpu v=18446744073709551616u"]
BAD_INFLUX_LINES["bad_field"] += [b"cpu  ", b"cpu v=", b"cpu v= 1", b'cpu v="a"b', b"cpu a,b=1"]
BAD_INFLUX_LINES["bad_timestamp"] += [b"cpu v=1 9223372036854775807", b"cpu v=1 1\t"]


# ---------------------------------------------------------------------------------------------
# StatsD
# ---------------------------------------------------------------------------------------------

_STATSD_NAME_CHARS = "abcXYZ019_.-"
_STATSD_TAG_CHARS = "abz09_.-/é "
# Graphite tags in a name (`name;k=v`) keep only what etsy's name cleaning keeps.
_STATSD_NAME_TAG_CHARS = "abz09_.-"
STATSD_TYPES = {"c": 0, "g": 1, "ms": 2, "h": 2, "d": 2, "s": 3}

statsd_names = st.text(_STATSD_NAME_CHARS, min_size=1, max_size=20)
statsd_tags = st.dictionaries(
    st.text(_STATSD_TAG_CHARS, min_size=1, max_size=8),
    st.text(_STATSD_TAG_CHARS + ":", max_size=8),
    max_size=3,
)
# Bounded so that sums over an interval stay finite.
statsd_floats = st.floats(min_value=-1e300, max_value=1e300)
statsd_name_tags = st.dictionaries(
    st.text(_STATSD_NAME_TAG_CHARS, min_size=1, max_size=6),
    st.text(_STATSD_NAME_TAG_CHARS + "=", min_size=1, max_size=6),
    max_size=2,
)
# etsy takes any positive rate; one above 1 makes a value count less than once.
statsd_rates = st.sampled_from([None, "1", "0.5", ".25", "0.1", "1.0", "2", "10", "2e-1", "5."])


@st.composite
def statsd_lines(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    """A valid one-group StatsD line and the fields it must parse to."""
    name = draw(statsd_names)
    kind = draw(st.sampled_from(sorted(STATSD_TYPES)))
    name_tags = draw(statsd_name_tags)
    tags = draw(statsd_tags)
    rate = draw(statsd_rates)
    if kind == "s":
        text = draw(st.text("abc012-_.", min_size=1, max_size=8))
        value: object = text.encode()
    else:
        number = draw(st.one_of(st.integers(-(10**6), 10**6), statsd_floats))
        if kind == "ms":  # etsy's timers take no negative value
            number = abs(number)
        text = repr(number)
        value = float(number)
    path = name + "".join(f";{k}={v}" for k, v in name_tags.items())
    line = f"{path}:{text}|{kind}" + (f"|@{rate}" if rate else "")
    if tags:
        line += "|#" + ",".join(f"{k}:{v}" if v else k for k, v in tags.items())
    expected = {
        "series": Series.of(name, name_tags | tags),
        "kind": STATSD_TYPES[kind],
        "value": value,
        "rate": float(rate) if rate else 1.0,
        "delta": kind == "g" and text[0] in "+-",
    }
    return line.encode(), expected


# Lines built from StatsD's own tokens, valid and not, so that chunks exercise both paths.
_STATSD_TOKENS = [
    b"a",
    b"b.c",
    b"x y",
    b"p/q",
    b"\xff",
    b"",
    b":",
    b"|",
    b"1",
    b"-2.5",
    b"+3",
    b"1e3",
    b"1e999",
    b"nan",
    b"x",
    b"|c",
    b"|g",
    b"|ms",
    b"|h",
    b"|d",
    b"|s",
    b"|q",
    b"|@0.5",
    b"|@0",
    b"|@2",
    b"|@x",
    b"|#k:v",
    b"|#k2",
    b"|#\xff",
    b"|#:v",
    b",",
    b"\r",
    b".5",
    b"@",
]
statsd_token_lines = st.lists(st.sampled_from(_STATSD_TOKENS), max_size=7).map(b"".join)
statsd_plain_lines = st.builds(
    lambda n, v, t, r, g: b"%s:%s%s%s%s" % (n, v, t, r, g),
    st.sampled_from([b"a", b"b.c", b"d-e", b"x y", b"s"]),
    st.sampled_from([b"1", b"-1", b"+2", b"0.5", b"1e2", b"3", b"u", b"", b"nan"]),
    st.sampled_from([b"|c", b"|g", b"|ms", b"|h", b"|s", b"|d"]),
    st.sampled_from([b"", b"", b"|@0.5", b"|@1", b"|@0"]),
    st.sampled_from([b"", b"", b"|#k:v", b"|#k,j:1", b"|#k:v:w"]),
)
statsd_hostile_lines = st.one_of(
    statsd_plain_lines, statsd_plain_lines, statsd_token_lines, st.binary(max_size=30)
)

BAD_STATSD_LINES: dict[str, list[bytes]] = {
    "bad_format": [b"just.a.name", b"a:1", b"a:1|c|@0.5|x", b"a:1|c:2", b"a:1|#k:v"],
    "bad_name": [b":1|c", b"%%%:1|c", b"\xff\xfe:1|c"],
    "bad_type": [b"a:1|x", b"a:1|", b"a:1|C", b"a:1|c |@0.5"],
    "bad_value": [b"a:one|c", b"a:|c", b"a:1_000|c", b"a:0x10|g", b"a:nan|ms", b"a:inf|c", b"a:|s"],
    "non_finite": [b"a:1e999|c", b"a:-1e400|g"],
    "bad_rate": [b"a:1|c|@0", b"a:1|c|@0.0", b"a:1|c|0.5", b"a:1|c|@-1", b"a:1|c|@x"],
    "bad_tag": [b"a:1|c|#\xff", b"a:1|c|#:v", b"a:1|c|#k|@0.5", b"a;k:1|c", b"a;k=:1|c"],
}
BAD_STATSD_LINES["bad_name"] += [b";k=v:1|c"]
BAD_STATSD_LINES["bad_value"] += [b"a:-1|ms", b"a:-0.5|ms|@0.1"]  # etsy refuses negative timers
BAD_STATSD_LINES["bad_rate"] += [b"a:1|c|@+0.5", b"a:1|c|@1e999", b"a:1|c|@1e-400", b"a:1|c|@."]


# ---------------------------------------------------------------------------------------------
# Power loss: what a cut leaves of bytes written after the last fsync
# ---------------------------------------------------------------------------------------------


@st.composite
def torn_bytes(draw: st.DrawFn, written: bytes) -> bytes:
    """What a power loss can leave on disk of `written`, bytes appended but not yet fsync'd:
    cut anywhere, stretches that never landed (zeros where the file grew) or hold garbage,
    and maybe garbage past the end."""
    data = bytearray(written)
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, len(data)))
        size = min(draw(st.integers(1, 600)), len(data) - start)
        if draw(st.booleans()):
            data[start : start + size] = bytes(size)
        else:
            data[start : start + size] = draw(st.binary(min_size=size, max_size=size))
    end = draw(st.one_of(st.just(len(data)), st.integers(0, len(data))))
    return bytes(data[:end]) + draw(st.one_of(st.just(b""), st.binary(max_size=64)))
