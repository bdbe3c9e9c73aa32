r"""InfluxDB 1.x's own line-protocol cases, as Shipboard must read them.

Every row comes from `models/points_test.go` of influxdata/influxdb at tag v1.8.10 (commit
688e697c51fd5353725da078555adbeff0363d01; the parsing cases are the same up to v1.12.0) and
names its test. A row gives the body and either the points Shipboard keeps (a numeric field
of `measurement` is the series `measurement.field`; string fields are skipped and counted) or
the reason the line is dropped. Upstream's errors map to Shipboard's reasons: "missing
fields" is `no_field`; missing or malformed tag keys and values and duplicate tags are
`bad_tag`; missing field keys or values, "invalid field format" and unbalanced quotes are
`bad_field`; a value that is no number or boolean, or an integer out of range, is
`bad_value`; NaN and floats out of range are `non_finite`; a bad or out-of-range timestamp
is `bad_timestamp`; "max key length exceeded" is `key_too_long`.

Upstream's `test()` helper parses with the default time 0 and precision `n`, as these rows do
unless they say otherwise. Where points_test.go enables unsigned integers (`EnableUintSupport`)
Shipboard takes them too, as InfluxDB 2.x does.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import pytest

from collector import influx_exact
from collector.influx_line import PRECISION_NS, parse_influx
from storage.records import Series

MAX_FLOAT = f"{sys.float_info.max:.1f}"  # strconv.FormatFloat(math.MaxFloat64, 'f', 1, 64)
SERVER_A = {"host": "serverA", "region": "us-west"}
SERVER_A_EAST = {"host": "serverA", "region": "us-east"}
NO_TIME = 946730096789012345  # 2000-01-01T12:34:56.789012345Z, the default time of two tests

Point = tuple[Series, int, float]


def point(metric: str, value: float, ts_ns: int = 0, tags: dict[str, str] | None = None) -> Point:
    return (Series.of(metric, tags or {}), ts_ns, value)


@dataclass(frozen=True)
class Case:
    test: str  # the test function of points_test.go
    body: bytes
    points: list[Point] = field(default_factory=list)
    dropped: str | None = None  # the reason of the one bad line
    strings: int = 0  # string fields skipped
    precision: str | None = None  # None: parse_influx's default, nanoseconds
    now_ns: int = 0

    @property
    def id(self) -> str:
        return f"{self.test}:{self.body[:60]!r}"


def bad(test: str, reason: str, *bodies: bytes) -> list[Case]:
    return [Case(test, body, dropped=reason) for body in bodies]


def ok(test: str, points: list[Point], *bodies: bytes, strings: int = 0) -> list[Case]:
    return [Case(test, body, points, strings=strings) for body in bodies]


def value_of(test: str, text: bytes, value: float, tags: dict[str, str] = SERVER_A) -> Case:
    """`cpu,host=serverA,region=us-west value=<text>`, the line of the number tests."""
    return Case(
        test, b"cpu,host=serverA,region=us-west value=" + text, [point("cpu.value", value, 0, tags)]
    )


def bad_value(test: str, reason: str, *texts: bytes) -> list[Case]:
    return bad(test, reason, *(b"cpu,host=serverA,region=us-west value=" + t for t in texts))


UNESCAPE = "TestParsePointUnescape"
EAST = {"regions": "east"}

CASES: list[Case] = [
    *ok("TestParsePointNoValue", [], b""),
    *ok("TestParsePointWhitespaceValue", [], b" "),
    *bad(
        "TestParsePointNoFields",
        "no_field",
        b"cpu_load_short,host=server01,region=us-west",
        b"cpu",
        b"cpu,host==",
        b"=",
    ),
    Case("TestParsePointNoTimestamp", b"cpu value=1", [point("cpu.value", 1.0)]),
    *bad(
        "TestParsePointMissingQuote",
        "bad_field",
        b'cpu,host=serverA value="test',
        b'cpu,host=serverA value="test""',
    ),
    *bad(
        "TestParsePointMissingTagKey",
        "bad_tag",
        b"cpu, value=1",
        b"cpu,",
        b"cpu,,,",
        b"cpu,host=serverA,=us-east value=1i",
        rb"cpu,host=serverAa\,,=us-east value=1i",
        rb"cpu,host=serverA\,,=us-east value=1i",
        b"cpu, =serverA value=1i",
    ),
    Case(
        "TestParsePointMissingTagKey",
        rb"cpu,host=serverA,\ =us-east value=1i",
        [point("cpu.value", 1.0, 0, {"host": "serverA", " ": "us-east"})],
    ),
    *bad(
        "TestParsePointMissingTagValue",
        "bad_tag",
        b"cpu,host",
        b"cpu,host,",
        b"cpu,host=",
        b"cpu,host value=1i",
        b"cpu,host=serverA,region value=1i",
        b"cpu,host=serverA,region= value=1i",
        b"cpu,host=serverA,region=,zone=us-west value=1i",
    ),
    *bad("TestParsePointInvalidTagFormat", "bad_tag", b"cpu,host=f=o,", rb"cpu,host=f\==o,"),
    *bad(
        "TestParsePointMissingFieldName",
        "bad_field",
        b"cpu,host=serverA,region=us-west =",
        b"cpu,host=serverA,region=us-west =123i",
        b"cpu,host=serverA,region=us-west value=123i,=456i",
    ),
    Case(
        "TestParsePointMissingFieldName",
        rb"cpu,host=serverA,region=us-west a\ =123i",
        [point("cpu.a ", 123.0, 0, SERVER_A)],
    ),
    *bad(
        "TestParsePointMissingFieldValue",
        "bad_field",
        b"cpu,host=serverA,region=us-west value=",
        b"cpu,host=serverA,region=us-west value= 1000000000i",
        b"cpu,host=serverA,region=us-west value=,value2=1i",
        b"cpu,host=server01,region=us-west 1434055562000000000i",
        b"cpu,host=server01,region=us-west value=1i,b",
        b'm f="blah"=123,r 1531703600000000000',
    ),
    *bad(
        "TestParsePointBadNumber",
        "bad_value",
        b"cpu v=- ",
        b"cpu v=-i ",
        b"cpu v=-. ",
        b"cpu v=. ",
        b"cpu v=1.0i ",
        b"cpu v=1ii ",
        b"cpu v=1a ",
        b"cpu v=-e-e-e ",
        b"cpu v=42+3 ",
        b"cpu v=-123u",
    ),
    *bad("TestParsePointBadNumber", "bad_field", b"cpu v= "),
    *bad_value("TestParsePointMaxInt64", "bad_value", b"9223372036854775808i"),
    value_of("TestParsePointMaxInt64", b"9223372036854775807i", 9223372036854775807.0),
    value_of("TestParsePointMaxInt64", b"0009223372036854775807i", 9223372036854775807.0),
    *bad_value("TestParsePointMinInt64", "bad_value", b"-9223372036854775809i"),
    value_of("TestParsePointMinInt64", b"-9223372036854775808i", -9223372036854775808.0),
    value_of("TestParsePointMinInt64", b"-0009223372036854775808i", -9223372036854775808.0),
    *bad_value("TestParsePointMaxFloat64", "non_finite", b"1" + MAX_FLOAT.encode()),
    value_of("TestParsePointMaxFloat64", MAX_FLOAT.encode(), sys.float_info.max),
    value_of("TestParsePointMaxFloat64", b"0000" + MAX_FLOAT.encode(), sys.float_info.max),
    *bad_value("TestParsePointMinFloat64", "non_finite", b"-1" + MAX_FLOAT.encode()),
    value_of("TestParsePointMinFloat64", b"-" + MAX_FLOAT.encode(), -sys.float_info.max),
    value_of("TestParsePointMinFloat64", b"-0000000" + MAX_FLOAT.encode(), -sys.float_info.max),
    *bad_value("TestParsePointMaxUint64", "bad_value", b"18446744073709551616u"),
    value_of("TestParsePointMaxUint64", b"18446744073709551615u", 18446744073709551615.0),
    value_of("TestParsePointMaxUint64", b"00018446744073709551615u", 18446744073709551615.0),
    *bad_value("TestParsePointMinUint64", "bad_value", b"--1u"),
    value_of("TestParsePointMinUint64", b"0u", 0.0),
    value_of("TestParsePointMinUint64", b"0000u", 0.0),
    *bad_value("TestParsePointNumberNonNumeric", "bad_value", b".1a"),
    *bad_value("TestParsePointNegativeWrongPlace", "bad_value", b"0.-1"),
    *bad_value("TestParsePointOnlyNegativeSign", "bad_value", b"-"),
    *bad_value("TestParsePointFloatMultipleDecimals", "bad_value", b"1.1.1"),
    value_of("TestParsePointInteger", b"1i", 1.0),
    value_of("TestParsePointNegativeInteger", b"-1i", -1.0),
    value_of("TestParsePointNegativeFloat", b"-1.0", -1.0),
    value_of("TestParsePointFloatNoLeadingDigit", b".1", 0.1),
    value_of("TestParsePointFloatScientific", b"1.0e4", 1e4),
    value_of("TestParsePointFloatScientific", b"1e4", 1e4),
    value_of("TestParsePointFloatScientificUpper", b"1.0E4", 1e4),
    value_of("TestParsePointFloatScientificUpper", b"1E4", 1e4),
    value_of("TestParsePointFloatScientificDecimal", b"1.0e-4", 1e-4),
    value_of("TestParsePointFloatNegativeScientific", b"-1.0e-4", -1e-4),
    *bad_value("TestParsePointBooleanInvalid", "bad_value", b"a"),
    *bad_value("TestParsePointScientificIntInvalid", "bad_value", b"9ie10", b"9e10i"),
    *ok(
        "TestParsePointWhitespace",
        [point("cpu.value", 1.0, 1257894000000000000)],
        b"cpu    value=1.0 1257894000000000000",
        b"cpu value=1.0     1257894000000000000",
        b"cpu      value=1.0     1257894000000000000",
        b"cpu value=1.0 1257894000000000000   ",
        b"cpu value=1.0 1257894000000000000\n",
        b"cpu   value=1.0 1257894000000000000\n",
    ),
    Case(UNESCAPE, rb"foo\,bar value=1i", [point("foo,bar.value", 1.0)]),
    Case(UNESCAPE, rb"cpu\,main,regions=east value=1.0", [point("cpu,main.value", 1.0, 0, EAST)]),
    Case(
        UNESCAPE,
        rb"cpu\ load,region=east value=1.0",
        [point("cpu load.value", 1.0, 0, {"region": "east"})],
    ),
    # The backslash stays: `=` is not escaped in a measurement.
    Case(
        UNESCAPE,
        rb"cpu\=load,region=east value=1.0",
        [point(r"cpu\=load.value", 1.0, 0, {"region": "east"})],
    ),
    Case(
        UNESCAPE,
        b"cpu=load,region=east value=1.0",
        [point("cpu=load.value", 1.0, 0, {"region": "east"})],
    ),
    Case(
        UNESCAPE,
        rb"cpu,region\,zone=east value=1.0",
        [point("cpu.value", 1.0, 0, {"region,zone": "east"})],
    ),
    Case(
        UNESCAPE,
        rb"cpu,region\ zone=east value=1.0",
        [point("cpu.value", 1.0, 0, {"region zone": "east"})],
    ),
    # A `\\` before `=` in a tag key: the `=` is escaped, the first backslash stays.
    Case(
        UNESCAPE,
        rb"cpu,reg\\=ion=east value=1.0",
        [point("cpu.value", 1.0, 0, {r"reg\=ion": "east"})],
    ),
    Case(UNESCAPE, rb"cpu,\ =east value=1.0", [point("cpu.value", 1.0, 0, {" ": "east"})]),
    Case(
        UNESCAPE,
        rb"cpu,regions=east\,west value=1.0",
        [point("cpu.value", 1.0, 0, {"regions": "east,west"})],
    ),
    # A `\\` before a space in a tag value: the space is escaped, the first backslash stays.
    Case(
        UNESCAPE,
        rb"cpu,regions=\\ east value=1.0",
        [point("cpu.value", 1.0, 0, {"regions": r"\ east"})],
    ),
    Case(
        UNESCAPE,
        rb"cpu,regions=eas\\ t value=1.0",
        [point("cpu.value", 1.0, 0, {"regions": r"eas\ t"})],
    ),
    Case(
        UNESCAPE,
        rb"cpu,regions=east\\  value=1.0",
        [point("cpu.value", 1.0, 0, {"regions": "east\\ "})],
    ),
    Case(
        UNESCAPE,
        rb"cpu,regions=east\ west value=1.0",
        [point("cpu.value", 1.0, 0, {"regions": "east west"})],
    ),
    Case(UNESCAPE, rb"cpu,regions=east value\,ms=1.0", [point("cpu.value,ms", 1.0, 0, EAST)]),
    # A field key ending in an escaped space.
    Case(UNESCAPE, rb"cpu,regions=east value\ ms=1.0", [point("cpu.value ms", 1.0, 0, EAST)]),
    Case(UNESCAPE, b'cpu,regions=east value="1"', strings=1),
    Case(UNESCAPE, b'cpu,regions=east value="1,0"', strings=1),
    Case(
        UNESCAPE,
        rb"cpu,regions=eas\t value=1.0",
        [point("cpu.value", 1.0, 0, {"regions": r"eas\t"})],
    ),
    Case(
        UNESCAPE,
        rb"cpu,regions=\\,\,\=east value=1.0",
        [point("cpu.value", 1.0, 0, {"regions": r"\,,=east"})],
    ),
    Case(UNESCAPE, rb"cpu \a=1i", [point(r"cpu.\a", 1.0)]),
    Case(
        UNESCAPE,
        rb"cpu=load,equals\=foo=tag\=value value=1i",
        [point("cpu=load.value", 1.0, 0, {"equals=foo": "tag=value"})],
    ),
    Case(
        "TestParsePointWithTags",
        b"cpu,host=serverA,region=us-east value=1.0 1000000000",
        [point("cpu.value", 1.0, 10**9, SERVER_A_EAST)],
    ),
    *bad(
        "TestParsePointWithDuplicateTags",
        "bad_tag",
        b"cpu,host=serverA,host=serverB value=1i 1000000000",
        b"cpu,b=2,b=1,c=3 value=1i 1000000000",
        b"cpu,b=2,c=3,b=1 value=1i 1000000000",
    ),
    *(
        Case(
            "TestParsePointWithVariousTags",
            b"m" + b"".join(b",t%d=x" % i for i in range(1, n + 1)) + b" v=0",
            [point("m.v", 0.0, 0, {f"t{i}": "x" for i in range(1, n + 1)})],
        )
        for n in (1, 2, 999, 1000)
    ),
    Case(
        "TestParsePointWithStringField",
        b'cpu,host=serverA,region=us-east value=1.0,str="foo",str2="bar" 1000000000',
        [point("cpu.value", 1.0, 10**9, SERVER_A_EAST)],
        strings=2,
    ),
    Case(
        "TestParsePointWithStringField",
        rb'cpu,host=serverA,region=us-east str="foo \" bar" 1000000000',
        strings=1,
    ),
    Case(
        "TestParsePointWithStringWithSpaces",
        b'cpu,host=serverA,region=us-east value=1.0,str="foo bar" 1000000000',
        [point("cpu.value", 1.0, 10**9, SERVER_A_EAST)],
        strings=1,
    ),
    Case(
        "TestParsePointWithStringWithNewline",
        b'cpu,host=serverA,region=us-east value=1.0,str="foo\nbar" 1000000000',
        [point("cpu.value", 1.0, 10**9, SERVER_A_EAST)],
        strings=1,
    ),
    *(
        Case(
            "TestParsePointWithStringWithCommas",
            b"cpu,host=serverA,region=us-east " + fields + b" 1000000000",
            [point("cpu.value", 1.0, 10**9, SERVER_A_EAST)] if b"value" in fields else [],
            strings=strings,
        )
        for fields, strings in [
            (rb'value=1.0,str="foo\,bar"', 1),
            (b'value=1.0,str="foo,bar"', 1),
            (rb'str="foo\\",str2="bar"', 2),
        ]
    ),
    Case(
        "TestParsePointQuotedMeasurement",
        b'"cpu",host=serverA,region=us-east value=1.0 1000000000',
        [point('"cpu".value', 1.0, 10**9, SERVER_A_EAST)],
    ),
    Case(
        "TestParsePointQuotedTags",
        b'cpu,"host"="serverA",region=us-east value=1.0 1000000000',
        [point("cpu.value", 1.0, 10**9, {'"host"': '"serverA"', "region": "us-east"})],
    ),
    *bad("TestParsePoint_TrailingSlash", "bad_timestamp", b"a v=1 0\\"),
    Case(
        "TestParsePointsUnbalancedQuotedTags",
        b'baz,mytag="a x=1 1441103862125\nbaz,mytag=a z=1 1441103862126',
        [
            point("baz.x", 1.0, 1441103862125, {"mytag": '"a'}),
            point("baz.z", 1.0, 1441103862126, {"mytag": "a"}),
        ],
    ),
    *ok(
        "TestParsePointEscapedStringsAndCommas",
        [],
        rb'cpu,host=serverA,region=us-east value="{Hello\"{,}\" World}" 1000000000',
        rb'cpu,host=serverA,region=us-east value="{Hello\"{\,}\" World}" 1000000000',
        strings=1,
    ),
    Case(
        "TestParsePointWithStringWithEquals",
        b'cpu,host=serverA,region=us-east str="foo=bar",value=1.0 1000000000',
        [point("cpu.value", 1.0, 10**9, SERVER_A_EAST)],
        strings=1,
    ),
    *ok(
        "TestParsePointWithStringWithBackslash",
        [],
        rb'cpu value="test\\\"" 1000000000',
        rb'cpu value="test\\" 1000000000',
        rb'cpu value="test\"" 1000000000',
        strings=1,
    ),
    Case(
        "TestParsePointWithBoolField",
        b"cpu,host=serverA,region=us-east true=true,t=t,T=T,TRUE=TRUE,True=True,"
        b"false=false,f=f,F=F,FALSE=FALSE,False=False 1000000000",
        [
            point(f"cpu.{name}", float(name[0] in "tT"), 10**9, SERVER_A_EAST)
            for name in ("true", "t", "T", "TRUE", "True", "false", "f", "F", "FALSE", "False")
        ],
    ),
    Case(
        "TestParsePointUnicodeString",
        'cpu,host=serverA,region=us-east value="wè" 1000000000'.encode(),
        strings=1,
    ),
    Case("TestParsePointNegativeTimestamp", b"cpu value=1 -1", [point("cpu.value", 1.0, -1)]),
    Case(
        "TestParsePointMaxTimestamp",
        b"cpu value=1 9223372036854775806",
        [point("cpu.value", 1.0, 2**63 - 2)],
    ),
    Case(
        "TestParsePointMinTimestamp",
        b"cpu value=1 -9223372036854775806",
        [point("cpu.value", 1.0, -(2**63) + 2)],
    ),
    *bad(
        "TestParsePointInvalidTimestamp",
        "bad_timestamp",
        b"cpu value=1 9223372036854775808",
        b"cpu value=1 -92233720368547758078",
        b"cpu value=1 -",
        b"cpu value=1 -/",
        b"cpu value=1 -1?",
        b"cpu value=1 1-",
        b"cpu value=1 9223372036854775807 12",
    ),
    Case(
        "TestNewPointFloatWithoutDecimal",
        b"cpu value=1 1000000000",
        [point("cpu.value", 1.0, 10**9)],
    ),
    Case(
        "TestNewPointNegativeFloat",
        b"cpu value=-0.64 1000000000",
        [point("cpu.value", -0.64, 10**9)],
    ),
    Case(
        "TestNewPointFloatNoDecimal", b"cpu value=1. 1000000000", [point("cpu.value", 1.0, 10**9)]
    ),
    Case(
        "TestNewPointFloatScientific",
        b"cpu value=6.632243e+06 1000000000",
        [point("cpu.value", 6632243.0, 10**9)],
    ),
    Case(
        "TestNewPointLargeInteger",
        b"cpu value=6632243i 1000000000",
        [point("cpu.value", 6632243.0, 10**9)],
    ),
    *bad(
        "TestParsePointNaN",
        "non_finite",
        b"cpu value=NaN 1000000000",
        b"cpu value=nAn 1000000000",
        b"cpu value=NaN",
    ),
    Case(
        "TestNewPointLargeNumberOfTags",
        b"cpu" + b"".join(b",tag%d=value%d" % (i, i) for i in range(255)) + b" value=1",
        [point("cpu.value", 1.0, 0, {f"tag{i}": f"value{i}" for i in range(255)})],
    ),
    Case(
        "TestParsePointIntsFloats",
        b"cpu,host=serverA,region=us-east int=10i,float=11.0,float2=12.1 1000000000",
        [
            point("cpu.int", 10.0, 10**9, SERVER_A_EAST),
            point("cpu.float", 11.0, 10**9, SERVER_A_EAST),
            point("cpu.float2", 12.1, 10**9, SERVER_A_EAST),
        ],
    ),
    Case(
        "TestParsePointKeyUnsorted",
        b"cpu,last=1,first=2 value=1i",
        [point("cpu.value", 1.0, 0, {"first": "2", "last": "1"})],
    ),
    Case(
        "TestParsePointToString",
        b"cpu,host=serverA,region=us-east bool=false,float=11,float2=12.123,int=10i,"
        b'str="string val" 1000000000',
        [
            point("cpu.bool", 0.0, 10**9, SERVER_A_EAST),
            point("cpu.float", 11.0, 10**9, SERVER_A_EAST),
            point("cpu.float2", 12.123, 10**9, SERVER_A_EAST),
            point("cpu.int", 10.0, 10**9, SERVER_A_EAST),
        ],
        strings=1,
    ),
    *(
        Case(
            "TestParsePointsWithPrecision",
            b"cpu,host=serverA,region=us-east value=1.0 " + stamp,
            [point("cpu.value", 1.0, ts_ns, SERVER_A_EAST)],
            precision=precision,
        )
        for precision, stamp, ts_ns in [
            (None, b"946730096789012345", 946730096789012345),  # "nanosecond by default"
            ("n", b"946730096789012345", 946730096789012345),
            ("u", b"946730096789012", 946730096789012000),
            ("ms", b"946730096789", 946730096789000000),
            ("s", b"946730096", 946730096000000000),
            ("m", b"15778834", 946730040000000000),
            ("h", b"262980", 946728000000000000),
        ]
    ),
    # A line without timestamp gets the default time truncated to the precision.
    *(
        Case(
            "TestParsePointsWithPrecisionNoTime",
            b"cpu,host=serverA,region=us-east value=1.0",
            [point("cpu.value", 1.0, ts_ns, SERVER_A_EAST)],
            precision=precision,
            now_ns=NO_TIME,
        )
        for precision, ts_ns in [
            (None, 946730096789012345),  # "no precision"
            ("n", 946730096789012345),
            ("u", 946730096789012000),
            ("ms", 946730096789000000),
            ("s", 946730096000000000),
            ("m", 946730040000000000),
            ("h", 946728000000000000),
        ]
    ),
    *ok("TestParsePointsWithPrecisionComments", [], b"# comment only"),
    *ok(
        "TestParsePointsWithPrecisionComments",
        [point("cpu.value", 1.0, 946730096789012345, SERVER_A_EAST)],
        b"# a point is below\ncpu,host=serverA,region=us-east value=1.0 946730096789012345",
        b"cpu,host=serverA,region=us-east value=1.0 946730096789012345\n# end of points",
        b"\t# a point is below\ncpu,host=serverA,region=us-east value=1.0 946730096789012345",
    ),
    # bytes.NewBuffer(make([]byte, 70*5000)) keeps its 350,000 zero bytes, and InfluxDB
    # skips NUL as whitespace before a line.
    Case(
        "TestParsePointsStringWithExtraBuffer",
        bytes(70 * 5000) + b"cpu,host=A,region=uswest value=0.125 1\n",
        [point("cpu.value", 0.125, 1, {"host": "A", "region": "uswest"})],
    ),
    # A field key that starts with a quote is literal; no string runs into the next line.
    Case(
        "TestParsePointsQuotesInFieldKey",
        b'cpu "a=1\ncpu value=2 1',
        [point('cpu."a', 1.0), point("cpu.value", 2.0, 1)],
    ),
    *bad("TestParsePointsQuotesInFieldKey", "bad_field", rb"""cpu "\, '= "\ v=1.0"""),
    Case(
        "TestParsePointsQuotesInTags",
        b't159,label=hey\\ "ya a=1i,value=0i\nt159,label=another a=2i,value=1i 1',
        [
            point("t159.a", 1.0, 0, {"label": 'hey "ya'}),
            point("t159.value", 0.0, 0, {"label": 'hey "ya'}),
            point("t159.a", 2.0, 1, {"label": "another"}),
            point("t159.value", 1.0, 1, {"label": "another"}),
        ],
    ),
    Case(
        "TestParsePointsBlankLine",
        b"cpu value=1i 1000000000\n\ncpu value=2i 2000000000",
        [point("cpu.value", 1.0, 10**9), point("cpu.value", 2.0, 2 * 10**9)],
    ),
    # The series key is the key, 4 bytes and the field key: at most 65,535 bytes.
    Case(
        "TestNewPointsRejectsMaxKey",
        b"a" * (65535 - 5 - 4) + b" value=1,ok=2.0",
        [point("a" * (65535 - 5 - 4) + ".value", 1.0), point("a" * (65535 - 5 - 4) + ".ok", 2.0)],
    ),
    *bad("TestNewPointsRejectsMaxKey", "key_too_long", b"a" * (65535 - 4 - 4) + b" value=1,ok=2.0"),
    Case(
        "TestPoint_FieldIterator_Simple",
        b"m v=42i,f=42 36",
        [point("m.v", 42.0, 36), point("m.f", 42.0, 36)],
    ),
    Case(
        "TestPoint_FieldIterator_FieldMap",
        b'\nm v=42\nm v=42i\nm v="string"\nm v=true\nm v="string\\"with\\"escapes"\n'
        b'm v=42i,f=42,g=42.314,u=123u\nm a=2i,b=3i,c=true,d="stuff",e=-0.23,f=123.456\n',
        [
            point("m.v", 42.0),
            point("m.v", 42.0),
            point("m.v", 1.0),
            *(
                point(f"m.{k}", v)
                for k, v in [("v", 42.0), ("f", 42.0), ("g", 42.314), ("u", 123.0)]
            ),
            *(
                point(f"m.{k}", v)
                for k, v in [("a", 2.0), ("b", 3.0), ("c", 1.0), ("e", -0.23), ("f", 123.456)]
            ),
        ],
        strings=3,
    ),
    *ok(
        "TestEscapeStringField",
        [],
        b't s="abcdefg"',
        rb't s="one double quote \" ."',
        rb't s="quote \" then backslash \\ ."',
        rb't s="backslash \\ then quote \" ."',
        strings=1,
    ),
    # ParseKeyBytes and ParseName read a series key; here each is the key of a line.
    *(
        Case(test, key + b" f=1", [point(metric, 1.0, 0, tags)])
        for test, key, metric, tags in [
            ("TestParseKeyBytes", b"m,k=v", "m.f", {"k": "v"}),
            ("TestParseKeyBytes", rb"m\ q,k=v", "m q.f", {"k": "v"}),
            ("TestParseKeyBytes", rb"m,k\ q=v", "m.f", {"k q": "v"}),
            ("TestParseKeyBytes", rb"m\ q,k\ q=v", "m q.f", {"k q": "v"}),
            ("TestParseName", b"m,k=v", "m.f", {"k": "v"}),
            ("TestParseName", rb"m\ q,k=v", "m q.f", {"k": "v"}),
        ]
    ),
    *(
        Case("TestPoint_Tags", line, [point("cpu.value", 1.0, 0, tags)])
        for line, tags in [
            (b"cpu value=1", {}),
            (b"cpu,tag0=v0 value=1", {"tag0": "v0"}),
            (b"cpu,tag0=v0,tag1=v0 value=1", {"tag0": "v0", "tag1": "v0"}),
            (rb"cpu,tag0=v\ 0 value=1", {"tag0": "v 0"}),
            (rb"cpu,tag0=v\ 0\ 1,tag1=v2 value=1", {"tag0": "v 0 1", "tag1": "v2"}),
            (rb"cpu,tag0=\, value=1", {"tag0": ","}),
            (rb"cpu,ta\ g0=\, value=1", {"ta g0": ","}),
            (rb"cpu,tag0=\,1 value=1", {"tag0": ",1"}),
            (rb"cpu,tag0=1\"\",t=k value=1", {"tag0": r"1\"\"", "t": "k"}),
        ]
    ),
]


def parse(case: Case, exact: bool = False) -> tuple[list[Point], dict[str, int], int]:
    precision = "ns" if case.precision is None else case.precision
    if exact:
        now_ns = case.now_ns - case.now_ns % PRECISION_NS[precision]
        result = influx_exact.parse_exact(case.body, now_ns, PRECISION_NS[precision])
    elif case.precision is None:
        result = parse_influx(case.body, case.now_ns)
    else:
        result = parse_influx(case.body, case.now_ns, precision)
    return result.samples.points(), dict(result.dropped), result.skipped_strings


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_upstream_case(case: Case) -> None:
    # Lines with strings are parsed as a group beside the others, so points may come grouped.
    points, dropped, strings = parse(case)
    assert sorted(points, key=repr) == sorted(case.points, key=repr)
    assert (dropped, strings) == ({} if case.dropped is None else {case.dropped: 1}, case.strings)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_upstream_case_on_the_exact_path_alone(case: Case) -> None:
    dropped = {} if case.dropped is None else {case.dropped: 1}
    assert parse(case, exact=True) == (case.points, dropped, case.strings)


def test_upstream_bad_lines_cost_only_themselves_in_a_body() -> None:
    """Every bad line of the table between two good lines, in one body: each is dropped with
    its reason and both neighbours are kept. (A string left open runs on to the next quote of
    the body, in InfluxDB too, so lines with an odd number of quotes are left out.)"""
    bad_cases = [
        case
        for case in CASES
        if case.dropped is not None and b"\n" not in case.body and case.body.count(b'"') % 2 == 0
    ]
    body = b"\n".join(b"ok v=%d %d\n%s" % (i, i, case.body) for i, case in enumerate(bad_cases))
    result = parse_influx(body + b"\nok v=-1 -1", 0)
    expected: dict[str, int] = {}
    for case in bad_cases:
        assert case.dropped is not None
        expected[case.dropped] = expected.get(case.dropped, 0) + 1
    assert dict(result.dropped) == expected
    assert [v for _, _, v in result.samples.points()] == [*map(float, range(len(bad_cases))), -1.0]
