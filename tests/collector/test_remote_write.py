"""Remote-write bodies decoded: valid write requests give exactly their points; anything that is
not snappy or not a WriteRequest (arbitrary bytes, valid bodies cut or with bytes changed) is
refused whole; invalid series and what Shipboard does not store are dropped and counted."""

from __future__ import annotations

import struct

import pytest
from cramjam import snappy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.prompb import Sample, sample_columns
from collector.prompb import WriteRequest as Message
from collector.remote_write import RemoteWriteError, decode
from storage.records import NS_PER_MS, Series
from storage.stale_markers import STALE_NAN_BITS, marker_series
from tests.collector.prompb_wire import (
    MAX_MS,
    VALUES,
    TimeSeries,
    WriteRequest,
    double,
    int64,
    varint,
    write_requests,
)

LIMIT = 1 << 20
STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
T = 1_700_000_000_000  # ms


def points(request: WriteRequest) -> list[tuple[Series, int, float]]:
    decoded = decode(request.body(), LIMIT)
    assert decoded.first_error is None
    return decoded.samples.points()


@settings(max_examples=50, deadline=None)
@given(write_requests())
def test_valid_write_requests_give_exactly_their_points(request: WriteRequest) -> None:
    decoded = decode(request.body(), LIMIT)
    assert decoded.samples.points() == request.points()
    assert decoded.first_error is None
    exemplars = sum(ts.exemplars for ts in request.timeseries)
    assert decoded.dropped == ({"exemplar": exemplars} if exemplars else {})
    # Each native histogram (count 3 in Prometheus' bucket 0 at schema 2, sum 4.5, at 1 ms) is
    # a sketch of OpenTelemetry's bucket -1.
    assert len(decoded.histograms) == sum(ts.histograms for ts in request.timeseries)
    for _, histogram in decoded.histograms:
        assert (histogram.scale, histogram.keys.tolist()) == (2, [2**40 - 1])
        assert (histogram.counts.tolist(), histogram.sum) == ([3.0], 4.5)
        assert histogram.time_ns == 1 * NS_PER_MS
    # Only series with points are kept, each once.
    assert sorted(map(str, decoded.samples.series)) == sorted(
        {str(s) for s, _, _ in request.points()}
    )


def decodes(body: bytes) -> bool:
    """Whether the body is snappy and a WriteRequest, by the libraries alone."""
    try:
        Message.FromString(bytes(snappy.decompress_raw(body)))
    except Exception:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_whole_unless_they_decode(body: bytes) -> None:
    if body and not decodes(body):
        with pytest.raises(RemoteWriteError) as refused:
            decode(body, LIMIT)
        assert refused.value.status == 400
        assert refused.value.reason in ("bad_snappy", "bad_protobuf")
    else:
        decode(body, LIMIT)  # what bytes that happen to decode hold is kept


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(write_requests().filter(lambda r: bool(r.encode())), st.data())
def test_a_valid_body_cut_short_is_refused_whole(
    request: WriteRequest, data: st.DataObject
) -> None:
    body = request.body()
    cut = data.draw(st.integers(1, len(body) - 1)) if len(body) > 1 else 0
    with pytest.raises(RemoteWriteError) as refused:
        decode(body[:cut], LIMIT)
    assert refused.value.status == 400


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(write_requests().filter(lambda r: bool(r.encode())), st.data())
def test_a_valid_body_with_bytes_changed_is_refused_or_decodes_as_the_libraries_read_it(
    request: WriteRequest, data: st.DataObject
) -> None:
    body = bytearray(request.body())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] ^= data.draw(st.integers(1, 255))
    if not decodes(bytes(body)):
        with pytest.raises(RemoteWriteError):
            decode(bytes(body), LIMIT)
    else:
        decode(bytes(body), LIMIT)


def test_labels_become_the_metric_and_tags_in_nanoseconds() -> None:
    request = WriteRequest(
        (
            TimeSeries(
                (("job", "prometheus"), ("__name__", "up"), ("instance", "h:9090"), ("empty", "")),
                ((1.0, T), (0.0, T + 1000)),
            ),
        )
    )
    up = Series.of("up", {"job": "prometheus", "instance": "h:9090"})
    assert points(request) == [(up, T * NS_PER_MS, 1.0), (up, (T + 1000) * NS_PER_MS, 0.0)]


def test_invalid_series_are_dropped_and_the_first_named() -> None:
    good = TimeSeries((("__name__", "ok"),), ((1.0, T),))
    request = WriteRequest(
        (
            TimeSeries((("job", "x"),), ((1.0, T), (2.0, T))),
            good,
            TimeSeries((("__name__", "m"), ("a", "1"), ("a", "2")), ((1.0, T),)),
            TimeSeries((("__name__", "m"), ("", "1")), ((1.0, T),)),
            TimeSeries((("__name__", "far"),), ((1.0, MAX_MS + 1), (2.0, -MAX_MS - 1))),
        )
    )
    decoded = decode(request.body(), LIMIT)
    assert decoded.samples.points() == [(Series("ok"), T * NS_PER_MS, 1.0)]
    assert decoded.dropped == {"no_name": 2, "bad_label": 2, "bad_timestamp": 2}
    assert decoded.invalid == 6
    assert decoded.first_error == 'series {job="x"} has no __name__ (metric name)'
    only_far = decode(WriteRequest(request.timeseries[4:]).body(), LIMIT)
    assert only_far.first_error == f"sample timestamp {MAX_MS + 1} ms of far is out of range"
    twice = decode(WriteRequest(request.timeseries[2:3]).body(), LIMIT)
    assert twice.first_error == """label 'a' appears twice in series {__name__="m", a="1", a="2"}"""


def test_a_label_ending_in_what_looks_like_a_sample_is_a_label() -> None:
    # The value's last 18 bytes read as a samples field of 16 bytes: tag 0x12, length 16, value
    # tag 0x09, 8 bytes, timestamp tag 0x10, 6 bytes.
    mimic = "\x12\x10\x09" + "a" * 8 + "\x10" + "b" * 6
    labels = (("__name__", "m"), ("k", mimic))
    request = WriteRequest((TimeSeries(labels), TimeSeries(labels, ((2.0, T),))))
    assert points(request) == [(Series.of("m", {"k": mimic}), T * NS_PER_MS, 2.0)]


def test_stale_markers_are_kept_as_markers_and_non_finite_values_dropped() -> None:
    values = ((STALE, T), (float("nan"), T + 1), (float("inf"), T + 2), (5.0, T + 3))
    decoded = decode(WriteRequest((TimeSeries((("__name__", "g"),), values),)).body(), LIMIT)
    assert sorted(decoded.samples.points(), key=str) == sorted(
        [(Series("g"), (T + 3) * NS_PER_MS, 5.0), (marker_series(Series("g")), T * NS_PER_MS, 1.0)],
        key=str,
    )
    assert decoded.dropped == {"non_finite": 2}
    assert decoded.first_error is None
    # A series whose every point is dropped is no series of the batch.
    gone = decode(WriteRequest((TimeSeries((("__name__", "g"),), values[1:3]),)).body(), LIMIT)
    assert gone.samples.series == ()


def test_a_body_larger_than_the_limit_once_decompressed_is_refused_before_inflating() -> None:
    request = WriteRequest((TimeSeries((("__name__", "x" * 5000),), ((1.0, T),)),))
    body = request.body()
    assert len(body) < 1000  # snappy shrinks the repeated name
    with pytest.raises(RemoteWriteError) as refused:
        decode(body, 1000)
    assert refused.value.status == 413
    assert "bytes decompressed, over the 1000-byte limit (--max-body)" in str(refused.value)


def test_an_empty_body_and_a_metadata_only_request_hold_no_points() -> None:
    assert len(decode(b"", LIMIT).samples) == 0
    metadata = decode(WriteRequest((), ("up", "http_requests_total")).body(), LIMIT)
    assert len(metadata.samples) == 0
    assert metadata.dropped == {}


LAYOUTS = {
    # as Prometheus writes a sample: the value (left out when 0), then the timestamp
    "usual": lambda value, ms: double(1, value) + int64(2, ms),
    "reversed": lambda value, ms: int64(2, ms) + double(1, value),
    # a field given twice: the last one counts
    "repeated": lambda value, ms: int64(2, ms + 1) + double(1, value) + int64(2, ms),
    "defaults written": lambda value, ms: b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ms),
}


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(VALUES, st.integers(-(2**63), 2**63 - 1), st.sampled_from(sorted(LAYOUTS))),
        max_size=20,
    )
)
def test_samples_read_column_wise_are_what_the_message_class_reads(
    samples: list[tuple[float, int, str]],
) -> None:
    encoded = [LAYOUTS[layout](value, ms) for value, ms, layout in samples]
    ts_ms, values = sample_columns(encoded)
    expected = [Sample.FromString(one) for one in encoded]
    assert ts_ms.tolist() == [sample.timestamp for sample in expected]
    assert values.tolist() == [sample.value for sample in expected]
