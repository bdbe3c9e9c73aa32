"""Rules and evaluations written briefly, and a rule stepped through a list of evaluations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotations.alerts.evaluate import Evaluation, instance_labels, label_key
from annotations.alerts.model import Instance, Rule
from annotations.alerts.states import Transition, step
from storage.records import NS_PER_S

S = NS_PER_S
MIN = 60 * S
T0 = 1_700_000_000 * S


def make_rule(**fields: Any) -> Rule:
    """`HighCpu`: cpu mean > 80 by host, with `fields` changed."""
    base = {"name": "HighCpu", "query": {"metric": "cpu", "group_by": ["host"]}}
    return Rule.model_validate(base | {"op": ">", "threshold": 80} | fields)


def values(rule: Rule, by_host: Mapping[str, float]) -> Evaluation:
    """An evaluation of `rule` giving each host its value."""
    return Evaluation(
        {label_key(instance_labels(rule, {"host": h})): v for h, v in by_host.items()}
    )


def failed(message: str = "metric: no such thing") -> Evaluation:
    return Evaluation(error=message)


@dataclass
class Run:
    """A rule stepped through evaluations, keeping what each step returned."""

    rule: Rule
    instances: dict[str, Instance] = field(default_factory=dict)
    transitions: list[tuple[int, Transition]] = field(default_factory=list)

    def at(self, now_ns: int, evaluation: Evaluation) -> dict[str, Instance]:
        self.instances, moved = step(self.rule, self.instances, evaluation, now_ns)
        self.transitions.extend((now_ns, t) for t in moved)
        return self.instances

    def each(self, times_ns: Sequence[int], evaluation: Evaluation) -> None:
        for now_ns in times_ns:
            self.at(now_ns, evaluation)

    def kinds(self) -> list[tuple[int, str, str]]:
        """(seconds after T0, kind, host) of every transition so far."""
        return [
            ((t - T0) // S, tr.kind, tr.instance.labels.get("host", ""))
            for t, tr in self.transitions
        ]

    def only(self) -> Instance:
        (instance,) = self.instances.values()
        return instance
