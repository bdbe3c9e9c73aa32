r"""InfluxDB's cases of tags, strings, timestamps, precisions, whole bodies and key lengths."""

from __future__ import annotations

from tests.collector.influx_upstream import (
    NO_TIME,
    SERVER_A_EAST,
    Case,
    bad,
    ok,
    point,
)

LINE_CASES: list[Case] = [
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
