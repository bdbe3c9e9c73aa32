"""A rule replayed over stored history: evaluated at its interval through the same state
machine as the engine, to tell when each of its alerts would have fired and resolved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from annotations.alerts.evaluate import evaluate
from annotations.alerts.model import Instance, Labels, Rule
from annotations.alerts.states import step
from storage.base import StoreReader
from storage.records import Tier


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert from firing to resolved (None: still firing when the replay ended)."""

    labels: Labels
    fingerprint: str
    fired_ns: int
    resolved_ns: int | None
    value: float | None  # when it fired


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replay saw: the episodes by firing time, how many evaluations ran and failed."""

    episodes: list[Episode] = field(default_factory=list)
    evaluations: int = 0
    errors: int = 0
    first_error: str = ""


def evaluation_times(start_ns: int, end_ns: int, interval_ns: int) -> range:
    """Every multiple of `interval_ns` in [start_ns, end_ns]: the same instants whatever the
    range, so two replays over overlapping ranges agree where they overlap."""
    first = -(-start_ns // interval_ns) * interval_ns
    return range(first, end_ns + 1, interval_ns)


def replay(
    store: StoreReader,
    tiers: Sequence[Tier],
    rule: Rule,
    start_ns: int,
    end_ns: int,
    default_interval_ns: int,
    *,
    now_ns: int,
) -> Replay:
    """`rule` evaluated at each of its `evaluation_times` between `start_ns` and `end_ns` on
    what the store holds at `now_ns` (rollups where raw points are gone), starting with no
    instances (nothing pending or firing before `start_ns`)."""
    instances: dict[str, Instance] = {}
    episodes: dict[str, list[Episode]] = {}
    count = errors = 0
    first_error = ""
    for then_ns in evaluation_times(start_ns, end_ns, rule.interval_ns(default_interval_ns)):
        evaluation = evaluate(store, tiers, rule, then_ns, present_ns=now_ns)
        count += 1
        if evaluation.error:
            errors += 1
            first_error = first_error or evaluation.error
        instances, transitions = step(rule, instances, evaluation, then_ns)
        for transition in transitions:
            alert = transition.instance
            if transition.kind == "firing":
                fired_ns = then_ns if alert.fired_ns is None else alert.fired_ns
                episode = Episode(alert.labels, alert.fingerprint, fired_ns, None, alert.value)
                episodes.setdefault(alert.fingerprint, []).append(episode)
            elif transition.kind == "resolved" and episodes.get(alert.fingerprint):
                last = episodes[alert.fingerprint][-1]
                resolved_ns = then_ns if alert.resolved_ns is None else alert.resolved_ns
                episodes[alert.fingerprint][-1] = replace(last, resolved_ns=resolved_ns)
    found = sorted(
        (e for per_alert in episodes.values() for e in per_alert),
        key=lambda e: (e.fired_ns, e.fingerprint),
    )
    return Replay(found, count, errors, first_error)
