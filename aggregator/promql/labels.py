"""The label names and values of every stored series, as listing each series' labels gives them
(`/labels` and `/label/<name>/values` without `match[]`, a Grafana variable's choices), read from
the store's tag index where it has one: the cost follows the names and values, not the series.
"""

from __future__ import annotations

from aggregator.promql.names import (
    NAME,
    label_value,
    prometheus_label,
    prometheus_name,
    series_labels,
)
from storage.base import StoreReader, TagIndex


def stored_label_names(store: StoreReader) -> set[str]:
    """Every label name some stored series has."""
    if not isinstance(store, TagIndex):
        return {name for series in store.series() for name, _ in series_labels(series)}
    found: set[str] = set()
    for metric in store.metrics("*"):
        found.add(NAME)
        for key in store.tag_keys(metric):
            if store.tag_values(metric, key) != [""]:  # an empty value is no label
                found.add(prometheus_label(key))
    return found


def stored_label_values(store: StoreReader, name: str) -> set[str]:
    """Every value label `name` takes among the stored series."""
    if not isinstance(store, TagIndex):
        return {label_value(series_labels(series), name) for series in store.series()} - {""}
    found: set[str] = set()
    for metric in store.metrics("*"):
        if name == NAME:
            found.add(prometheus_name(metric))
            continue
        keys = [key for key in store.tag_keys(metric) if prometheus_label(key) == name]
        if len(keys) == 1:
            found.update(store.tag_values(metric, keys[0]))
        elif keys:  # `a.b` and `a_b`: one label, whose value is the last key's that is set
            found.update(label_value(series_labels(s), name) for s in store.series(metric))
    return found - {""}
