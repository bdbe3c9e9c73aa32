"""A rollout step judged by its plan's guards.

Each guard compares the users who have the flag against those who do not, when the guard's
metric carries the SDK's variant tag (`flag_<key>`, `annotations.flags.client.Flags.tags`):
the treatment is every series tagged with a value other than `off`, the control those tagged
`off`, both over the step's window. A metric without that tag (or a plain counter, whose rate
says nothing across arms of different sizes) compares the step's window with the one as long
before it. Series carrying an `environment` tag are read for the flag's environment only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregator.compare import Comparison, MetricSpec, Side, compare
from aggregator.query import TagFilter
from annotations.flags.rollout_plan import GuardDoc, RolloutDoc
from storage.base import StoreReader, tag_keys
from storage.records import Tier


def arm_tag(flag_key: str) -> str:
    """The tag the SDK gives an app's metrics: `flag_new-search:on`."""
    return f"flag_{flag_key}"


def _sides(
    store: StoreReader,
    spec: MetricSpec,
    flag_key: str,
    environment: str,
    start_ns: int,
    end_ns: int,
) -> tuple[str, Side, Side]:
    """("arms" or "windows", the control side, the treatment side)."""
    keys = tag_keys(store, spec.metric)
    filters: tuple[TagFilter, ...] = ()
    if "environment" in keys:
        filters = (TagFilter("environment", environment),)
    tag = arm_tag(flag_key)
    if spec.kind != "count" and tag in keys:
        control = Side(start_ns, end_ns, (*filters, TagFilter(tag, "off")))
        treatment = (*filters, TagFilter(tag, "*"), TagFilter(tag, "off", negate=True))
        return "arms", control, Side(start_ns, end_ns, treatment)
    before = Side(start_ns - (end_ns - start_ns), start_ns, filters)
    return "windows", before, Side(start_ns, end_ns, filters)


def judge_guard(
    store: StoreReader,
    tiers: Sequence[Tier],
    guard: GuardDoc,
    plan: RolloutDoc,
    flag_key: str,
    environment: str,
    window: tuple[int, int],
    now_ns: int,
) -> tuple[str, Comparison]:
    """(the mode, "arms" or "windows", and the comparison) of one guard over the step window."""
    spec = MetricSpec(guard.metric, guard.ratio_of, guard.agg)
    mode, control, treatment = _sides(store, spec, flag_key, environment, *window)
    increase = guard.increase()
    result = compare(
        store,
        tiers,
        spec,
        control,
        treatment,
        now_ns=now_ns,
        min_samples=plan.min_samples,
        max_increase=increase.amount if increase.relative else 0.0,
        absolute_floor=0.0 if increase.relative else increase.amount,
    )
    return mode, result


def judge_step(
    store: StoreReader,
    tiers: Sequence[Tier],
    plan: RolloutDoc,
    flag_key: str,
    environment: str,
    window: tuple[int, int],
    now_ns: int,
) -> dict[str, Any]:
    """The step's evaluation as the flag's state shows it: its `status` (`step_status`), the
    window, and each guard's comparison under `metrics`, as in a deploy's verdict."""
    metrics = []
    statuses = []
    for guard in plan.guards:
        mode, result = judge_guard(store, tiers, guard, plan, flag_key, environment, window, now_ns)
        statuses.append(result.status)
        metrics.append(result.json() | {"mode": mode, "max_increase": guard.increase().text()})
    return {
        "status": step_status(statuses),
        "at_ns": now_ns,
        "window_ns": list(window),
        "metrics": metrics,
    }


def step_status(statuses: Sequence[str]) -> str:
    """regressed if a guard is, healthy if every guard is (or there are none), else
    inconclusive: a guard without data holds the step, it never lets it pass."""
    if "regressed" in statuses:
        return "regressed"
    return "healthy" if all(s == "healthy" for s in statuses) else "inconclusive"
