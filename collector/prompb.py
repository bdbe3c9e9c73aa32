"""Prometheus' remote-write 1.0 messages (`prometheus.WriteRequest` of prompb), built at import.

The schema is declared here as a descriptor and turned into message classes by the `protobuf`
library, so no generated code is kept in the tree and no `protoc` is needed. Field numbers and
types follow prompb's `remote.proto` and `types.proto` (Prometheus 2.40 on); the messages of
remote read are left out.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

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
TimeSeries: Any = _message("TimeSeries")
