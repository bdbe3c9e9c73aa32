"""Prometheus' HTTP API parameters and JSON values (web/api/v1/api.go): times as unix seconds
or RFC 3339, durations as seconds or `5m`, floats as Go's shortest decimal strings."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import promql_parser

from aggregator.promql.names import Labels
from aggregator.promql.series import Points, Sample

MIN_TIME_MS = -62135596800000 + 1  # Prometheus' minTime/maxTime (any series, any time)
MAX_TIME_MS = 253402300799000 - 1


class BadParam(ValueError):
    """A parameter Prometheus would refuse: `invalid parameter "name": why`."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f'invalid parameter "{name}": {why}')


def parse_time_ms(name: str, text: str) -> int:
    """Unix seconds (to the ms) or RFC 3339, in ms."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            whole = math.trunc(seconds)
            return whole * 1000 + round((seconds - whole) * 1000)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadParam(name, f'cannot parse "{text}" to a valid timestamp') from None
    if parsed.tzinfo is None:
        raise BadParam(name, f'cannot parse "{text}" to a valid timestamp')
    return round(parsed.timestamp() * 1000)


def parse_duration_ms(name: str, text: str) -> int:
    """Seconds (`15`, `0.5`) or a Prometheus duration (`1m30s`), in ms."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and abs(seconds) < 9.2e9:
            return round(seconds * 1000)
        raise BadParam(name, f'cannot parse "{text}" to a valid duration. It overflows int64')
    try:
        return promql_parser.parse_duration(text) // timedelta(milliseconds=1)
    except ValueError:
        raise BadParam(name, f'cannot parse "{text}" to a valid duration') from None


def format_value(value: float) -> str:
    """As Go's strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return np.format_float_positional(value, unique=True, trim="-")


def metric(labels: Labels) -> dict[str, str]:
    return dict(labels)


def vector_json(vector: list[Sample], ts_ms: int) -> list[dict[str, object]]:
    at = ts_ms / 1000
    return [{"metric": metric(s.labels), "value": [at, format_value(s.value)]} for s in vector]


def matrix_json(series: list[Points]) -> list[dict[str, object]]:
    return [
        {
            "metric": metric(p.labels),
            "values": [[t / 1000, format_value(v)] for t, v in zip(p.ts, p.values, strict=True)],
        }
        for p in series
    ]
