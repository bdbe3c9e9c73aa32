"""The rows of InfluxDB 1.x's line-protocol cases: a case's shape and the helpers that build one."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

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
