"""How a deploy's verdict (its annotation's `extra["verdict"]`, the API's `verdict`) reads to
people: one line for chat and "What changed", a line per metric for a hover or a terminal.

`0.4% -> 0.9% (+125%)`: a ratio's values are percentages, anything else has 4 significant
digits; the change is relative (after / before - 1), its interval the 99% one of that change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATUSES = ("pending", "healthy", "regressed", "inconclusive", "no_data")
FINAL = STATUSES[1:]

Verdict = Mapping[str, Any]


def verdict_of(extra: Mapping[str, Any]) -> Verdict | None:
    """A deploy annotation's verdict, or None when it has none (no metric to verify, or not
    one of the statuses)."""
    verdict = extra.get("verdict")
    if isinstance(verdict, Mapping) and verdict.get("status") in STATUSES:
        return verdict
    return None


def metrics_of(verdict: Verdict) -> list[Mapping[str, Any]]:
    found = verdict.get("metrics")
    return [m for m in found if isinstance(m, Mapping)] if isinstance(found, list) else []


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def worst_metric(verdict: Verdict) -> Mapping[str, Any] | None:
    """The metric a one-line summary names: a regressed one before any other, then the one that
    rose the most (a metric without a change last)."""

    def rank(metric: Mapping[str, Any]) -> tuple[bool, float]:
        change = _number(metric.get("change"))
        return metric.get("status") == "regressed", float("-inf") if change is None else change

    return max(metrics_of(verdict), key=rank, default=None)


def is_ratio(metric: Mapping[str, Any]) -> bool:
    return metric.get("test") == "binomial" or "/" in str(metric.get("metric", ""))


def value_text(metric: Mapping[str, Any], value: object) -> str:
    """`0.4%` for a ratio of 0.004, `212.5` for a p99 of 212.5 ms, `no data` for none."""
    number = _number(value)
    if number is None:
        return "no data"
    return f"{number * 100:.3g}%" if is_ratio(metric) else f"{number:.4g}"


def change_text(change: object) -> str:
    """`+125%`, `-3.2%`, `+0%`."""
    number = _number(change)
    if number is None:
        return "?"
    percent = number * 100
    return f"{percent:+.0f}%" if abs(percent) >= 100 else f"{percent:+.2g}%"


def metric_text(metric: Mapping[str, Any]) -> str:
    """`http.errors/http.requests 0.4% -> 0.9% (+125%)`, or `… no data` without both values."""
    name = str(metric.get("metric", "?"))
    before, after = metric.get("before"), metric.get("after")
    if _number(before) is None or _number(after) is None:
        return f"{name} no data"
    change = metric.get("change")
    said = f" ({change_text(change)})" if _number(change) is not None else ""
    return f"{name} {value_text(metric, before)} -> {value_text(metric, after)}{said}"


def metric_detail(metric: Mapping[str, Any]) -> str:
    """`regressed: http.errors/http.requests 0.4% -> 0.9% (+125%), 99% interval +80% to +170%,
    binomial test, 12000/11800 samples`: one metric of a verdict in full."""
    parts = [f"{metric.get('status', '?')}: {metric_text(metric)}"]
    interval = metric.get("interval")
    if isinstance(interval, list | tuple) and len(interval) == 2:
        parts.append(f"99% interval {change_text(interval[0])} to {change_text(interval[1])}")
    if metric.get("test"):
        parts.append(f"{metric['test']} test")
    samples = metric.get("samples")
    if isinstance(samples, list | tuple) and len(samples) == 2:
        parts.append(f"{samples[0]}/{samples[1]} samples")
    if _number(metric.get("baseline")) is not None:
        parts.append(f"a day earlier {value_text(metric, metric['baseline'])}")
    return ", ".join(parts)


def confounder_text(confounder: Mapping[str, Any]) -> str:
    """`deploy api 7.0.0 to prod` (an annotation's title, prefixed by its kind if it lacks it)."""
    kind, title = str(confounder.get("kind", "")), str(confounder.get("title", ""))
    return title if title.startswith(kind) else f"{kind} {title}".strip()


def confounders_of(verdict: Verdict) -> list[str]:
    found = verdict.get("confounders")
    items = found if isinstance(found, list) else []
    return [confounder_text(c) for c in items if isinstance(c, Mapping)]


def summary_text(verdict: Verdict) -> str:
    """`regressed: http.errors/http.requests 0.4% -> 0.9% (+125%)`; `pending`; `no_data`."""
    status = str(verdict.get("status"))
    worst = worst_metric(verdict)
    return f"{status}: {metric_text(worst)}" if worst is not None else status
