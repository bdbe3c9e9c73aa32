"""Prometheus' remote-write 1.0 messages (`prometheus.WriteRequest` of prompb), built at import.

The schema is declared here as a descriptor and turned into message classes by the `protobuf`
library, so no generated code is kept in the tree and no `protoc` is needed. Field numbers and
types follow prompb's `remote.proto` and `types.proto` (Prometheus 2.40 on); the messages of
remote read are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from storage.records import FloatArray, IntArray

_F = descriptor_pb2.FieldDescriptorProto
_ONE, _MANY = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_TYPES = {
    "double": _F.TYPE_DOUBLE,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "sint32": _F.TYPE_SINT32,
    "sint64": _F.TYPE_SINT64,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}

# message: (field name, number, label, type: a scalar above, `.message` or `enum .Enum`, oneof)
_MESSAGES: dict[str, list[tuple[str, int, int, str, str]]] = {
    "WriteRequest": [
        ("timeseries", 1, _MANY, ".prometheus.TimeSeries", ""),
        ("metadata", 3, _MANY, ".prometheus.MetricMetadata", ""),
    ],
    "TimeSeries": [
        ("labels", 1, _MANY, ".prometheus.Label", ""),
        ("samples", 2, _MANY, ".prometheus.Sample", ""),
        ("exemplars", 3, _MANY, ".prometheus.Exemplar", ""),
        ("histograms", 4, _MANY, ".prometheus.Histogram", ""),
    ],
    "Label": [("name", 1, _ONE, "string", ""), ("value", 2, _ONE, "string", "")],
    "Sample": [("value", 1, _ONE, "double", ""), ("timestamp", 2, _ONE, "int64", "")],
    "Exemplar": [
        ("labels", 1, _MANY, ".prometheus.Label", ""),
        ("value", 2, _ONE, "double", ""),
        ("timestamp", 3, _ONE, "int64", ""),
    ],
    "MetricMetadata": [
        ("type", 1, _ONE, "enum .prometheus.MetricMetadata.MetricType", ""),
        ("metric_family_name", 2, _ONE, "string", ""),
        ("help", 4, _ONE, "string", ""),
        ("unit", 5, _ONE, "string", ""),
    ],
    "Histogram": [
        ("count_int", 1, _ONE, "uint64", "count"),
        ("count_float", 2, _ONE, "double", "count"),
        ("sum", 3, _ONE, "double", ""),
        ("schema", 4, _ONE, "sint32", ""),
        ("zero_threshold", 5, _ONE, "double", ""),
        ("zero_count_int", 6, _ONE, "uint64", "zero_count"),
        ("zero_count_float", 7, _ONE, "double", "zero_count"),
        ("negative_spans", 8, _MANY, ".prometheus.BucketSpan", ""),
        ("negative_deltas", 9, _MANY, "sint64", ""),
        ("negative_counts", 10, _MANY, "double", ""),
        ("positive_spans", 11, _MANY, ".prometheus.BucketSpan", ""),
        ("positive_deltas", 12, _MANY, "sint64", ""),
        ("positive_counts", 13, _MANY, "double", ""),
        ("reset_hint", 14, _ONE, "enum .prometheus.Histogram.ResetHint", ""),
        ("timestamp", 15, _ONE, "int64", ""),
        ("custom_values", 16, _MANY, "double", ""),
    ],
    "BucketSpan": [("offset", 1, _ONE, "sint32", ""), ("length", 2, _ONE, "uint32", "")],
    # The same bytes read shallowly, for speed: each series as it came, and its labels and
    # samples as they came.
    "EncodedWriteRequest": [("timeseries", 1, _MANY, "bytes", "")],
    "RawTimeSeries": [
        ("labels", 1, _MANY, "bytes", ""),
        ("samples", 2, _MANY, "bytes", ""),
        ("exemplars", 3, _MANY, "bytes", ""),
        ("histograms", 4, _MANY, "bytes", ""),
    ],
}
_ENUMS = {
    "MetricMetadata": (
        "MetricType",
        [
            "UNKNOWN",
            "COUNTER",
            "GAUGE",
            "HISTOGRAM",
            "GAUGEHISTOGRAM",
            "SUMMARY",
            "INFO",
            "STATESET",
        ],
    ),
    "Histogram": ("ResetHint", ["UNKNOWN", "YES", "NO", "GAUGE"]),
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="shipboard/prompb.proto", package="prometheus", syntax="proto3"
    )
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        oneofs = list(dict.fromkeys(oneof for *_, oneof in fields if oneof))
        for oneof in oneofs:
            message.oneof_decl.add(name=oneof)
        for field_name, number, label, kind, oneof in fields:
            field = message.field.add(name=field_name, number=number, label=label)
            if kind.startswith("enum "):
                field.type, field.type_name = _F.TYPE_ENUM, kind.removeprefix("enum ")
            elif kind.startswith("."):
                field.type, field.type_name = _F.TYPE_MESSAGE, kind
            else:
                field.type = _TYPES[kind]
            if oneof:
                field.oneof_index = oneofs.index(oneof)
        if name in _ENUMS:
            enum_name, values = _ENUMS[name]
            enum = message.enum_type.add(name=enum_name)
            for number, value in enumerate(values):
                enum.value.add(name=value, number=number)
    return file


# A pool of its own: no clash with any other copy of these names (another library's prompb).
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _message(name: str) -> type[Message]:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"prometheus.{name}"))


# The classes are built at run time, so their fields are not known to the type checker.
WriteRequest: Any = _message("WriteRequest")
EncodedWriteRequest: Any = _message("EncodedWriteRequest")
RawTimeSeries: Any = _message("RawTimeSeries")
Label: Any = _message("Label")
Sample: Any = _message("Sample")
Histogram: Any = _message("Histogram")

_VALUE_TAG, _TIMESTAMP_TAG = 0x09, 0x10  # Sample's fields 1 (fixed 64 bits) and 2 (varint)
_MAX_VARINT = 10


def sample_columns(samples: Sequence[bytes]) -> tuple[IntArray, FloatArray]:
    """The timestamps and values of encoded `Sample`s (each a valid one), column-wise.

    Samples as Prometheus writes them, the value (absent when 0) then the timestamp, are read
    all at once with numpy; any other shape goes through the message class."""
    count = len(samples)
    sizes = np.fromiter(map(len, samples), np.int64, count)
    data = np.frombuffer(b"".join(samples) + bytes(_MAX_VARINT + 9), np.uint8)
    starts = np.cumsum(sizes) - sizes
    has_value = data[starts] == _VALUE_TAG
    stamp_at = starts + np.where(has_value, 9, 0)
    width = sizes - (stamp_at - starts) - 1  # bytes of the timestamp's varint
    usual = (data[stamp_at] == _TIMESTAMP_TAG) & (width >= 1) & (width <= _MAX_VARINT)
    stamps = np.zeros(count, np.uint64)
    last_seen = np.zeros(count, bool)
    for k in range(_MAX_VARINT):
        byte = data[stamp_at + 1 + k].astype(np.uint64)
        inside = k < width
        stamps |= np.where(inside, (byte & np.uint64(0x7F)) << np.uint64(7 * k), np.uint64(0))
        # A varint's last byte alone has its high bit clear.
        continues = (byte & np.uint64(0x80)) != 0
        usual &= ~inside | (continues == (k < width - 1))
        last_seen |= inside & ~continues
    usual &= last_seen
    value_bytes = data[(starts + 1)[:, None] + np.arange(8)]
    values = np.where(has_value, value_bytes.copy().view("<f8")[:, 0], 0.0)
    ts_ms = stamps.view(np.int64)
    for row in np.flatnonzero(~usual).tolist():
        sample = Sample.FromString(samples[row])
        ts_ms[row], values[row] = sample.timestamp, sample.value
    return ts_ms, values
