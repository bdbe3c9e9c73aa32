"""One evaluation of a rule: the value of each of its groups over the rule's window, now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aggregator.errors import QueryError
from aggregator.query import TagFilter
from aggregator.window import GroupKey, WindowCache, window_values
from annotations.alerts.model import ALERTNAME, Labels, Rule, Selector
from storage.base import StoreReader
from storage.records import Tier

LabelKey = tuple[tuple[str, str], ...]
"""An instance's labels as sorted (name, value) pairs: a dict key that `dict()` turns back."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a rule's query gave: a value per instance (by its labels), or why it failed."""

    values: dict[LabelKey, float] = field(default_factory=dict)
    error: str = ""


def base_labels(rule: Rule) -> Labels:
    """The labels every instance of `rule` carries: its own, and `alertname` (always its name)."""
    return {**rule.labels, ALERTNAME: rule.name}


def instance_labels(rule: Rule, group: Mapping[str, str]) -> Labels:
    """The rule's labels, then the group's, then `alertname`: a tag cannot rename the alert."""
    return {**rule.labels, **group, ALERTNAME: rule.name}


def label_key(labels: Mapping[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


def denominator(rule: Rule) -> Selector | None:
    """`ratio_of` with the fields it leaves out (tags, agg, group_by) taken from `query`."""
    ratio = rule.ratio_of
    if ratio is None:
        return None
    inherited = {
        name: getattr(rule.query, name)
        for name in ("tags", "agg", "group_by")
        if name not in ratio.model_fields_set
    }
    return ratio.model_copy(update=inherited)


def tag_filters(selector: Selector) -> tuple[TagFilter, ...]:
    """A selector's tags as query filters (`key: glob*` or `key: !value`); QueryError if bad."""
    return tuple(TagFilter.of(key, pattern) for key, pattern in sorted(selector.tags.items()))


def evaluate(
    store: StoreReader,
    tiers: Sequence[Tier],
    rule: Rule,
    now_ns: int,
    *,
    present_ns: int | None = None,
    cache: WindowCache | None = None,
) -> Evaluation:
    """The rule's value per group over [now - window, now); `ratio_of` divides group by group
    (a group without a denominator, or with 0, has no value). Never raises: a failed query
    (QueryError or anything else) comes back as the evaluation's error, saying why.

    `present_ns` (default `now_ns`) picks the tier still holding the window: a replay of the
    past passes the real time, so windows older than the raw tier keeps come from rollups.
    The rules of one round share `cache` (see `WindowCache`): each window is read once."""
    start_ns = now_ns - rule.window_ns

    def values_of(selector: Selector) -> dict[GroupKey, float]:
        filters = tag_filters(selector)
        return window_values(
            store,
            tiers,
            selector.metric,
            filters,
            selector.agg,
            selector.group_by,
            start_ns,
            now_ns,
            now_ns=present_ns,
            cache=cache,
        )

    try:
        values = values_of(rule.query)
        ratio = denominator(rule)
        if ratio is not None:
            values = _divide(values, values_of(ratio), ratio.group_by)
    except QueryError as error:
        return Evaluation(error=str(error))
    except Exception as error:  # any failure is the rule's error state, shown, not a crash
        return Evaluation(error=f"{type(error).__name__}: {error}")
    return Evaluation(
        {label_key(instance_labels(rule, dict(group))): value for group, value in values.items()}
    )


def _divide(
    values: Mapping[GroupKey, float], totals: Mapping[GroupKey, float], by: tuple[str, ...]
) -> dict[GroupKey, float]:
    """Each group's value over the total of the denominator group it falls in (the
    denominator's `group_by` picks that group's labels out of the numerator's)."""
    ratios = {}
    for group, value in values.items():
        labels = dict(group)
        total = totals.get(tuple(sorted((key, labels.get(key, "")) for key in set(by))))
        if total:
            ratios[group] = value / total
    return ratios
