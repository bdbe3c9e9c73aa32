"""Remote-write bodies for the tests, encoded by hand from the protobuf wire format and prompb's
field numbers, so that the decoder is checked against an encoder it shares nothing with; and
hypothesis strategies of valid write requests with the points they must give."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cramjam import snappy
from hypothesis import strategies as st

from storage.records import NS_PER_MS, Series

_VARINT, _FIXED64, _BYTES = 0, 1, 2


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64s are ten bytes, as two's complement
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def nested(number: int, payload: bytes) -> bytes:
    return _key(number, _BYTES) + varint(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return nested(number, value.encode()) if value else b""  # proto3 leaves defaults out


def double(number: int, value: float) -> bytes:
    return _key(number, _FIXED64) + struct.pack("<d", value) if value else b""


def int64(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + varint(value) if value else b""


@dataclass(frozen=True)
class TimeSeries:
    labels: tuple[tuple[str, str], ...]
    samples: tuple[tuple[float, int], ...] = ()  # (value, ms)
    histograms: int = 0  # how many native histogram samples
    exemplars: int = 0

    def encode(self) -> bytes:
        parts = [nested(1, text(1, name) + text(2, value)) for name, value in self.labels]
        parts += [nested(2, double(1, value) + int64(2, ms)) for value, ms in self.samples]
        parts += [
            nested(3, nested(1, text(1, "trace_id") + text(2, "ab")) + double(2, 1.5))
        ] * self.exemplars
        # count_int (1) 3, sum (3), schema (4, zigzag) 2, one positive span (11) and delta (12)
        histogram = int64(1, 3) + double(3, 4.5) + int64(4, 4) + nested(11, int64(2, 1))
        parts += [nested(4, histogram + nested(12, varint(6)) + int64(15, 1))] * self.histograms
        return b"".join(parts)


@dataclass(frozen=True)
class WriteRequest:
    timeseries: tuple[TimeSeries, ...]
    metadata: tuple[str, ...] = field(default=())  # metric family names

    def encode(self) -> bytes:
        series = b"".join(nested(1, ts.encode()) for ts in self.timeseries)
        # MetricMetadata: type (1) GAUGE, metric_family_name (2), help (4)
        meta = b"".join(
            nested(3, int64(1, 2) + text(2, m) + text(4, "help")) for m in self.metadata
        )
        return series + meta

    def body(self) -> bytes:
        """The request as Prometheus posts it: snappy's block format."""
        return bytes(snappy.compress_raw(self.encode()))

    def points(self) -> list[tuple[Series, int, float]]:
        """The points Shipboard must make of it: `__name__` the metric, the other labels with
        a value the tags, milliseconds in nanoseconds."""
        out = []
        for ts in self.timeseries:
            labels = dict(ts.labels)
            tags = {k: v for k, v in labels.items() if k != "__name__" and v}
            series = Series.of(labels["__name__"], tags)
            out += [(series, ms * NS_PER_MS, value) for value, ms in ts.samples]
        return out


MAX_MS = (2**63 - 1) // NS_PER_MS  # either way from 1970, as int64 nanoseconds
NAMES = st.text(min_size=1, max_size=12).filter(lambda name: name != "__name__")
VALUES = st.floats(allow_nan=False, allow_infinity=False)


def series_labels(
    names: st.SearchStrategy[str] = NAMES,
) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """A valid label set in any order: a `__name__`, distinct names, values possibly empty."""
    return st.tuples(
        st.text(min_size=1, max_size=20),
        st.dictionaries(names, st.text(max_size=12), max_size=4),
    ).flatmap(lambda drawn: st.permutations([("__name__", drawn[0]), *drawn[1].items()]).map(tuple))


# Any time, and times of these years, whose 6-byte varints Shipboard reads on a fast path.
ANY_TIME = st.integers(-MAX_MS, MAX_MS) | st.integers(2**35, 2**42 - 1)


def write_requests(
    timestamps: st.SearchStrategy[int] = ANY_TIME,
) -> st.SearchStrategy[WriteRequest]:
    samples = st.lists(st.tuples(VALUES, timestamps), max_size=5).map(tuple)
    series = st.builds(
        TimeSeries,
        series_labels(),
        samples,
        st.integers(0, 2),
        st.integers(0, 2),
    )
    return st.builds(
        WriteRequest,
        st.lists(series, max_size=6).map(tuple),
        st.lists(st.text(max_size=8), max_size=2).map(tuple),
    )


def stored(points: list[tuple[Series, int, float]]) -> list[tuple[Series, int, float]]:
    """What a store holds after taking `points`: the last value for a series and time, in
    series then time order."""
    last = {(series, ts): value for series, ts, value in points}
    return sorted(((s, ts, v) for (s, ts), v in last.items()), key=lambda p: (str(p[0]), p[1]))


def renamed(request: WriteRequest, prefix: str) -> WriteRequest:
    """`request` with `prefix` before every metric name, so that examples share no series."""
    return WriteRequest(
        tuple(
            TimeSeries(
                tuple((k, prefix + v if k == "__name__" else v) for k, v in ts.labels),
                ts.samples,
                ts.histograms,
                ts.exemplars,
            )
            for ts in request.timeseries
        ),
        request.metadata,
    )
