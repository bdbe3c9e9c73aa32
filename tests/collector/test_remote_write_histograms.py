"""Native histograms of remote write as sketches: buckets from spans and deltas (or float
counts) at any of Prometheus' schemas, hostile spans and counts refused by name."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.errors import ParseError
from collector.prompb import Histogram as Message
from collector.remote_write_histograms import MAX_SCHEMA, MIN_SCHEMA, StaleHistogram, from_native
from storage.records import NS_PER_MS
from storage.sketches import STATSD_SCALE
from storage.stale_markers import STALE_NAN_BITS

BASE = 2**40
STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def encoded(message: object, side: str, counts: dict[int, int], as_float: bool) -> None:
    """Buckets by Prometheus index into the message's spans and deltas (or float counts)."""
    spans, end, previous = getattr(message, f"{side}_spans"), None, 0
    for index in sorted(counts):
        if end == index:
            spans[-1].length += 1
        else:
            spans.add(offset=index if end is None else index - end, length=1)
        end = index + 1
        if as_float:
            getattr(message, f"{side}_counts").append(float(counts[index]))
        else:
            getattr(message, f"{side}_deltas").append(counts[index] - previous)
        previous = counts[index]


buckets = st.dictionaries(st.integers(-3000, 3000), st.integers(1, 10**6), max_size=40)


@given(st.integers(MIN_SCHEMA, MAX_SCHEMA), buckets, buckets, st.integers(0, 100), st.booleans())
def test_buckets_are_the_sketches_own(
    schema: int, positive: dict[int, int], negative: dict[int, int], zeros: int, as_float: bool
) -> None:
    message = Message(schema=schema, sum=12.5, timestamp=1234)
    if as_float:
        message.count_float = float(sum(positive.values()) + sum(negative.values()) + zeros)
        message.zero_count_float = float(zeros)
    else:
        message.count_int = sum(positive.values()) + sum(negative.values()) + zeros
        message.zero_count_int = zeros
    encoded(message, "positive", positive, as_float)
    encoded(message, "negative", negative, as_float)
    histogram = from_native(message, "latency")
    kept = min(schema, STATSD_SCALE)
    expected: dict[int, float] = {}
    for side, sign in ((positive, 1), (negative, -1)):
        for index, count in side.items():  # Prometheus' index i is OpenTelemetry's i - 1
            key = sign * (BASE + ((index - 1) >> (schema - kept)))
            expected[key] = expected.get(key, 0.0) + count
    if zeros:
        expected[0] = float(zeros)
    assert histogram.scale == kept
    assert dict(zip(histogram.keys.tolist(), histogram.counts.tolist(), strict=True)) == expected
    assert histogram.keys.tolist() == sorted(expected)
    assert (histogram.sum, histogram.time_ns) == (12.5, 1234 * NS_PER_MS)


@given(
    st.integers(-10, 12),
    st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(0, 50)), max_size=6),
    st.lists(st.integers(-(2**40), 2**40), max_size=60),
    st.floats(allow_nan=True),
)
def test_any_spans_and_deltas_give_a_histogram_or_a_parse_error(
    schema: int, spans: list[tuple[int, int]], deltas: list[int], total: float
) -> None:
    message = Message(schema=schema, sum=total, count_int=1)
    for offset, length in spans:
        message.positive_spans.add(offset=offset, length=length)
    message.positive_deltas.extend(deltas)
    try:
        histogram = from_native(message, "latency")
    except (ParseError, StaleHistogram):
        return
    assert (histogram.counts > 0).all()
    assert math.isfinite(histogram.sum)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"schema": 9}, "schema 9 is outside Prometheus' -4..8"),
        ({"positive_deltas": [1, 1]}, "spans hold 1 buckets and 2 counts are sent"),
        ({"positive_deltas": [-1]}, "bucket counts must be >= 0"),
        ({"sum": math.inf}, "sum, min and max must be finite"),
    ],
)
def test_bad_histograms_are_refused_with_what_to_fix(change: dict[str, object], named: str) -> None:
    message = Message(schema=3, sum=1.0, count_int=1, positive_deltas=[1])
    message.positive_spans.add(offset=5, length=1)
    for field, value in change.items():
        if isinstance(value, list):
            del getattr(message, field)[:]
            getattr(message, field).extend(value)
        else:
            setattr(message, field, value)
    with pytest.raises(ParseError, match=named.replace("(", r"\(").replace(".", r"\.")):
        from_native(message, "latency")


def test_a_stale_marker_is_told_apart() -> None:
    with pytest.raises(StaleHistogram):
        from_native(Message(schema=0, sum=STALE), "latency")
