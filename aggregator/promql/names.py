"""Shipboard's names as Prometheus spells them: `http.requests.count` is `http_requests_count`.

Prometheus' rule for metric names is `[a-zA-Z_:][a-zA-Z0-9_:]*` and for label names
`[a-zA-Z_][a-zA-Z0-9_]*`: every other character becomes `_`, and a leading digit gets a `_`
before it. Names already in that form (scraped or remote-written ones) are themselves, so the
mapping round-trips with what Prometheus ingest stores.
"""

from __future__ import annotations

import functools
import re

from storage.records import Series

_NOT_METRIC = re.compile(r"[^a-zA-Z0-9_:]")
_NOT_LABEL = re.compile(r"[^a-zA-Z0-9_]")

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
NAME = "__name__"
Labels = tuple[tuple[str, str], ...]  # sorted by name, no empty values


def _spelled(name: str, invalid: re.Pattern[str]) -> str:
    spelled = invalid.sub("_", name)
    return "_" + spelled if spelled[:1].isdigit() or not spelled else spelled


def prometheus_name(metric: str) -> str:
    """A Shipboard metric name as a Prometheus metric name."""
    return _spelled(metric, _NOT_METRIC)


def prometheus_label(key: str) -> str:
    """A Shipboard tag key as a Prometheus label name."""
    return _spelled(key, _NOT_LABEL)


def series_labels(series: Series) -> Labels:
    """A series' labels: `__name__` and its tags (a tag with an empty value is no label)."""
    labels = {prometheus_label(k): v for k, v in series.tags if v}
    labels[NAME] = prometheus_name(series.metric)
    return tuple(sorted(labels.items()))


@functools.lru_cache(maxsize=1 << 16)  # the same few series' labels at every step
def without_name(labels: Labels) -> Labels:
    return tuple(pair for pair in labels if pair[0] != NAME)


def label_value(labels: Labels, name: str) -> str:
    for key, value in labels:
        if key == name:
            return value
    return ""


def format_labels(labels: Labels) -> str:
    """`{a="1", b="2"}`, as Prometheus' errors print a label set."""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"
