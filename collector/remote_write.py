"""Prometheus remote write 1.0 bodies: snappy-compressed `prometheus.WriteRequest` protobufs.

A series' `__name__` is its metric name and its other labels are its tags, kept as they are
(`http_requests_total{code="500"}` is metric `http_requests_total` with the tag `code`); a label
with an empty value is no label, as in Prometheus. Timestamps are milliseconds.

A body that is not snappy or not a WriteRequest is refused whole (`RemoteWriteError`). Of a body
that decodes, a series without a `__name__`, with an empty or repeated label name, and samples
with a timestamp beyond int64 nanoseconds are invalid: dropped and named in the answer, the rest
kept. What Shipboard does not store is dropped and counted, not refused, since the sender could
do nothing else with it: NaN and infinite values and exemplars. Prometheus' stale markers are
kept (`storage.stale_markers`). Native histograms become latency sketches
(`collector.remote_write_histograms`); one that does not convert is invalid (`bad_histogram`).
Metric metadata (type, help, unit) is not kept.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cramjam import DecompressionError, snappy
from google.protobuf.message import DecodeError

from collector.errors import ParseError
from collector.otlp_sketches import Histogram
from collector.prompb import (
    EncodedWriteRequest,
    Label,
    RawTimeSeries,
    WriteRequest,
    sample_columns,
)
from collector.prompb import Histogram as HistogramMessage
from collector.remote_write_histograms import StaleHistogram, from_native
from storage.records import NS_PER_MS, Samples, Series
from storage.stale_markers import as_markers, is_stale

PROTOCOL = "remote_write"
MAX_MS = (2**63 - 1) // NS_PER_MS  # the timestamps whose nanoseconds fit in int64
_SHOWN = 200
# Snappy's densest element is a 3-byte copy of 64 bytes: no body inflates more than this.
MAX_EXPANSION = 22

Labels = tuple[tuple[str, str], ...]

# Series by their labels as encoded, and by the bytes before a lone sample (None: not labels
# alone), so a series sent again costs one dict lookup; bounded against floods of new series.
# Used from the decoding thread only.
_SERIES: dict[tuple[bytes, ...], Series | InvalidSeries] = {}
_PREFIXES: dict[bytes, Series | InvalidSeries | None] = {}
_CACHE_MAX = 100_000
_SAMPLES_TAG = 0x12  # TimeSeries' field 2, length-delimited
_LONE_SAMPLE_SIZES = (16, 7)  # a value and a 6-byte timestamp, or the timestamp alone


class RemoteWriteError(ValueError):
    """A body refused whole: `status` is the HTTP answer, `reason` the dropped counter's label."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class InvalidSeries:
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Decoded:
    """The points of a body, its native histograms (cumulative, as sent), what was dropped
    by reason (in samples), and the first invalid series or sample for the answer (None when
    there was none)."""

    samples: Samples
    dropped: Counter[str] = field(default_factory=Counter)
    first_error: str | None = None
    histograms: list[tuple[Series, Histogram]] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return sum(self.dropped[reason] for reason in INVALID_REASONS)


INVALID_REASONS = ("no_name", "bad_label", "bad_timestamp", "bad_histogram")


def decode(body: bytes, max_bytes: int) -> Decoded:
    """The points of a remote-write body, at most `max_bytes` once decompressed; a body that
    does not decode raises RemoteWriteError."""
    if not body:
        return Decoded(Samples.empty())
    raw = _decompress(body, max_bytes)
    try:
        WriteRequest.FromString(raw)  # the whole body checked, every field of every message
    except DecodeError as error:
        raise RemoteWriteError(
            400, "bad_protobuf", f"body is not a prometheus.WriteRequest protobuf: {error}"
        ) from None
    return _points(raw)


def _decompress(body: bytes, max_bytes: int) -> bytes:
    try:
        # The block format states its decompressed size first: checked before inflating.
        size = snappy.decompress_raw_len(body)
        if size > len(body) * MAX_EXPANSION:
            raise DecompressionError(f"it claims {size} bytes, more than it can hold")
        if size > max_bytes:
            raise RemoteWriteError(
                413,
                "too_large",
                f"body is {size} bytes decompressed, over the {max_bytes}-byte limit "
                "(--max-body): lower max_samples_per_send in remote_write's queue_config",
            )
        return bytes(snappy.decompress_raw(body))
    except DecompressionError as error:
        raise RemoteWriteError(
            400, "bad_snappy", f"body is not snappy-compressed (block format): {error}"
        ) from None


def _points(raw: bytes) -> Decoded:
    dropped: Counter[str] = Counter()
    first_error: str | None = None
    series: list[Series] = []
    positions: dict[Series, int] = {}
    index: list[int] = []
    encoded: list[bytes] = []
    histograms: list[tuple[Series, Histogram]] = []
    for one in EncodedWriteRequest.FromString(raw).timeseries:
        found, samples = _lone_sample(one)
        if found is None:
            timeseries = RawTimeSeries.FromString(one)
            found = _series(tuple(timeseries.labels))
            if timeseries.histograms:
                error = _histograms(found, timeseries.histograms, histograms, dropped)
                first_error = first_error or error
            if exemplars := len(timeseries.exemplars):
                dropped["exemplar"] += exemplars
            samples = timeseries.samples
        if not (count := len(samples)):
            continue
        if isinstance(found, InvalidSeries):
            dropped[found.reason] += count
            first_error = first_error or found.message
            continue
        position = positions.get(found)
        if position is None:
            position = positions[found] = len(series)
            series.append(found)
        index.extend([position] * count)
        encoded.extend(samples)
    ts_ms, values = sample_columns(encoded)
    batch = Samples(tuple(series), np.asarray(index, np.int32), ts_ms, values)
    kept, out_of_range = _keep(batch, dropped)
    return Decoded(kept, dropped, first_error or out_of_range, histograms)


def _histograms(
    series: Series | InvalidSeries,
    encoded: list[bytes],
    into: list[tuple[Series, Histogram]],
    dropped: Counter[str],
) -> str | None:
    """The series' native histograms into `into`; the first one's error, if one is invalid."""
    if isinstance(series, InvalidSeries):
        dropped[series.reason] += len(encoded)
        return series.message
    first_error = None
    for one in encoded:
        message = HistogramMessage.FromString(one)
        try:
            if not -MAX_MS <= message.timestamp <= MAX_MS:
                raise ParseError(
                    "bad_timestamp",
                    str(series),
                    f"timestamp {message.timestamp} ms is out of range",
                )
            into.append((series, from_native(message, series.metric)))
        except StaleHistogram:
            dropped["stale_marker"] += 1
        except ParseError as error:
            dropped[error.reason] += 1
            first_error = first_error or f"{error.detail} in series {series}"
    return first_error


def _keep(samples: Samples, dropped: Counter[str]) -> tuple[Samples, str | None]:
    """The points Shipboard stores, in nanoseconds, series without points left out, stale
    markers as the points of their hidden series (`storage.stale_markers`); the others counted
    in `dropped`; what the first point out of time range was."""
    stale = is_stale(samples.values)
    non_finite = ~np.isfinite(samples.values) & ~stale
    out_of_range = (samples.ts_ns < -MAX_MS) | (samples.ts_ns > MAX_MS)  # still milliseconds
    first = None
    for reason, mask in (("non_finite", non_finite), ("bad_timestamp", out_of_range)):
        if count := int(np.count_nonzero(mask)):
            dropped[reason] += count
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range)[0])
        where = samples.series[samples.index[row]]
        first = f"sample timestamp {samples.ts_ns[row]} ms of {where} is out of range"
    markers = stale & ~out_of_range
    drop = stale | non_finite | out_of_range
    if drop.any():
        kept = _without_unused_series(samples.take(~drop))
        marked = as_markers(_without_unused_series(samples.take(markers)))
        samples = Samples.concat([kept, marked])
    ns = samples.ts_ns * NS_PER_MS
    return Samples(samples.series, samples.index, ns, samples.values), first


def _without_unused_series(samples: Samples) -> Samples:
    used, index = np.unique(samples.index, return_inverse=True)
    series = tuple(samples.series[i] for i in used.tolist())
    return Samples(series, index.astype(np.int32), samples.ts_ns, samples.values)


def _lone_sample(encoded: bytes) -> tuple[Series | InvalidSeries | None, tuple[bytes, ...]]:
    """The series and sample of a series encoded as Prometheus sends most: its labels, then one
    sample (a value and a timestamp of 6 varint bytes, 1971-2109, or the timestamp alone), which
    costs a look at two bytes and a dict lookup; (None, ()) for any other."""
    for size in _LONE_SAMPLE_SIZES:
        if (
            len(encoded) > size + 1
            and encoded[-size - 2] == _SAMPLES_TAG
            and encoded[-size - 1] == size
        ):
            found = _labels_only(encoded[: -size - 2])
            if found is not None:
                return found, (encoded[-size:],)
    return None, ()


def _labels_only(encoded: bytes) -> Series | InvalidSeries | None:
    """The series of a TimeSeries encoding that holds labels alone, else None. Parsed from its
    start, a prefix that is whole fields ends where the rest of the series begins, so the rest
    is then the one sample field it looked like."""
    try:
        return _PREFIXES[encoded]
    except KeyError:
        pass
    try:
        timeseries = RawTimeSeries.FromString(encoded)
    except DecodeError:  # the two bytes looked like a sample's by chance
        timeseries = None
    found = None
    if not (
        timeseries is None or timeseries.samples or timeseries.exemplars or timeseries.histograms
    ):
        found = _series(tuple(timeseries.labels))
    _bounded_put(_PREFIXES, encoded, found)
    return found


def _series(encoded: tuple[bytes, ...]) -> Series | InvalidSeries:
    found = _SERIES.get(encoded)
    if found is None:
        labels = tuple((label.name, label.value) for label in map(Label.FromString, encoded))
        found = _new_series(labels)
        _bounded_put(_SERIES, encoded, found)
    return found


def _bounded_put(cache: dict[Any, Any], key: object, value: object) -> None:
    if len(cache) >= _CACHE_MAX:  # a flood of new series: start again, as line protocol does
        cache.clear()
    cache[key] = value


def _new_series(labels: Labels) -> Series | InvalidSeries:
    names = [name for name, _ in labels]
    shown = _shown(labels)
    if "" in names:
        return InvalidSeries("bad_label", f"a label name is empty in series {shown}")
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        return InvalidSeries("bad_label", f"label {twice!r} appears twice in series {shown}")
    metric = dict(labels).get("__name__", "")
    if not metric:
        return InvalidSeries("no_name", f"series {shown} has no __name__ (metric name)")
    return Series.of(metric, [(k, v) for k, v in labels if k != "__name__" and v])


def _shown(labels: Labels) -> str:
    text = "{" + ", ".join(f"{name}={json.dumps(value)}" for name, value in labels) + "}"
    return text[:_SHOWN] + ("..." if len(text) > _SHOWN else "")
