"""One deploy's verdict: its metrics' after window against its before window (and the same
after window a day earlier as a seasonal baseline), with the changes that may confound it.

Windows (the finish at F, the start at S, `verify_after` V): the after window runs from F plus a
settle of min(1 m, V / 4) to F + V; the before window is as long and ends at S. A metric reads
the series of the deploy's service (`service` tag) and environment (`environment` tag, when the
metric's series of that service carry one). The verdict is `regressed` when a metric is,
`no_data` when none has data, `inconclusive` when one with data is, else `healthy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregator.compare import Comparison, MetricSpec, Side, compare
from aggregator.errors import QueryError
from aggregator.query import TagFilter
from annotations.control.db import ControlDB
from annotations.control.notes import Annotation, list_annotations
from storage.base import StoreReader, series_with
from storage.records import NS_PER_S, Tier

DAY_NS = 86_400 * NS_PER_S
MAX_SETTLE_NS = 60 * NS_PER_S
DEFAULT_SPECS = (
    MetricSpec("http.errors.count", "http.requests.count"),
    MetricSpec("http.latency", None, "p99"),
)
"""Judged for every deploy whose service has these series (StatsD `http.errors`,
`http.requests` counters and the `http.latency` timer tagged `service`)."""


def windows(start_ns: int, end_ns: int, verify_after_ns: int) -> tuple[int, int, int, int]:
    """(before start, before end, after start, after end) of a deploy (module doc)."""
    settle_ns = min(MAX_SETTLE_NS, verify_after_ns // 4)
    after_start, after_end = end_ns + settle_ns, end_ns + verify_after_ns
    return start_ns - (after_end - after_start), start_ns, after_start, after_end


def specs_of(store: StoreReader, deploy: Annotation) -> list[MetricSpec]:
    """The deploy's `watch` metrics that parse as metric specs, then the default ones its
    service has series of."""
    found: list[MetricSpec] = []
    for text in deploy.extra.get("watch", []):
        try:
            spec = MetricSpec.parse(str(text))
        except QueryError:
            continue  # free text ("checkout latency") says what to look at, not a series
        if spec not in found:
            found.append(spec)
    service = deploy.tags.get("service", "")
    for spec in DEFAULT_SPECS:
        if spec not in found and series_with(store, spec.metric, (("service", service),)):
            found.append(spec)
    return found


def _filters(store: StoreReader, spec: MetricSpec, deploy: Annotation) -> tuple[TagFilter, ...]:
    service, environment = deploy.tags.get("service", ""), deploy.tags.get("environment", "")
    filters = [TagFilter("service", service)]
    mine = series_with(store, spec.metric, (("service", service),))
    if environment and any(s.tag("environment") is not None for s in mine):
        filters.append(TagFilter("environment", environment))
    return tuple(filters)


def judge(
    db: ControlDB,
    store: StoreReader,
    tiers: Sequence[Tier],
    deploy: Annotation,
    verify_after_ns: int,
    now_ns: int,
) -> dict[str, Any] | None:
    """The verdict of a finished deploy as the API gives it; None without metrics to judge."""
    assert deploy.end_ns is not None
    specs = specs_of(store, deploy)
    if not specs:
        return None
    b0, b1, a0, a1 = windows(deploy.start_ns, deploy.end_ns, verify_after_ns)
    metrics = []
    results: list[Comparison] = []
    for spec in specs:
        filters = _filters(store, spec, deploy)
        after = Side(a0, a1, filters)
        result = compare(store, tiers, spec, Side(b0, b1, filters), after, now_ns=now_ns)
        seasonal = Side(a0 - DAY_NS, a1 - DAY_NS, filters)
        baseline = compare(store, tiers, spec, seasonal, after, now_ns=now_ns).before
        results.append(result)
        metrics.append(result.json() | {"baseline": baseline})
    return {
        "status": overall([r.status for r in results]),
        "at": now_ns,
        "metrics": metrics,
        "confounders": confounders(db, deploy, b0, a1),
    }


def overall(statuses: Sequence[str]) -> str:
    """regressed if any metric is; no_data if none has data; inconclusive if one with data
    is; else healthy."""
    if "regressed" in statuses:
        return "regressed"
    with_data = [s for s in statuses if s != "no_data"]
    if not with_data:
        return "no_data"
    return "inconclusive" if "inconclusive" in with_data else "healthy"


def confounders(
    db: ControlDB, deploy: Annotation, start_ns: int, end_ns: int
) -> list[dict[str, Any]]:
    """Other deploys of the service and every flag change overlapping [start, end]."""
    service = deploy.tags.get("service")
    found = list_annotations(db, start_ns, end_ns, kinds=("deploy", "flag"))
    return [
        {"kind": a.kind, "id": a.id, "title": a.title, "start_ns": a.start_ns}
        for a in found
        if a.id != deploy.id and (a.kind == "flag" or a.tags.get("service") == service)
    ]
