"""The alert state machine, pure: a rule's instances and one evaluation in, the next instances
and what changed out.

    inactive ──holds──> pending ──held for `for`──> firing ──stopped holding for
        ^                  │                          │     `keep_firing_for`──> resolved
        └──stops holding───┘                          │                          (kept 15 min)
                                                      └─no data (no_data: nodata)──> nodata

An instance whose group is missing from an evaluation follows the rule's `no_data`: `ok` reads
as not holding, `alerting` as holding, `nodata` puts it in state `nodata`, `keep_last` leaves it
as it was. A firing instance keeps its episode (fired_ns, annotation) through `nodata` and
through failed evaluations, so neither pages twice. A rule whose query fails and has nothing
pending or firing shows one instance in state `error` saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from annotations.alerts.evaluate import Evaluation, base_labels
from annotations.alerts.model import Instance, Labels, Rule, fingerprint, render_template
from storage.records import NS_PER_S

RESOLVED_KEPT_NS = 15 * 60 * NS_PER_S
"""How long a resolved instance stays listed before it is dropped."""

TransitionKind = Literal["firing", "resolved", "pending", "nodata", "error"]


@dataclass(frozen=True, slots=True)
class Transition:
    """An instance entering a state: `firing` and `resolved` are what notifications are for."""

    kind: TransitionKind
    instance: Instance


Step = tuple[dict[str, Instance], list[Transition]]


def is_firing(instance: Instance) -> bool:
    """In a firing episode: firing, or firing when its data went missing or its query failed."""
    return instance.fired_ns is not None and instance.resolved_ns is None


def _rendered(rule: Rule, labels: Labels, value: float | None, prev: Instance | None) -> Labels:
    if value is None and prev is not None and prev.annotations:
        return prev.annotations  # no new value to put in: keep what the last one said
    return {k: render_template(text, labels, value) for k, text in rule.annotations.items()}


class _Round:
    """One step's output under construction."""

    def __init__(self, rule: Rule, now_ns: int) -> None:
        self.rule = rule
        self.now_ns = now_ns
        self.instances: dict[str, Instance] = {}
        self.transitions: list[Transition] = []

    def put(self, instance: Instance, kind: TransitionKind | None = None) -> None:
        self.instances[instance.fingerprint] = instance
        if kind is not None:
            self.transitions.append(Transition(kind, instance))

    def new(self, labels: Labels, state: TransitionKind, value: float | None) -> None:
        """A fresh episode of the instance with `labels`: pending, firing at once, or nodata."""
        now = self.now_ns
        held = state != "nodata"
        instance = Instance(
            self.rule.name,
            labels,
            fingerprint(labels),
            state,
            value,
            now,
            active_ns=now if held else None,
            fired_ns=now if state == "firing" else None,
            last_held_ns=now if held else None,
            annotations=_rendered(self.rule, labels, value, None),
        )
        self.put(instance, state)

    def advance(
        self, labels: Labels, prev: Instance | None, held: bool, value: float | None
    ) -> None:
        """The instance after an evaluation at which the condition `held` (or did not)."""
        rule, now = self.rule, self.now_ns
        annotations = _rendered(rule, labels, value, prev)
        if prev is not None and is_firing(prev):
            if held:
                self.put(_update(prev, "firing", value, now, annotations, held=True))
            elif prev.last_held_ns is None or now - prev.last_held_ns >= rule.keep_firing_for_ns:
                resolved = _update(prev, "resolved", value, now, annotations)
                self.put(replace(resolved, resolved_ns=now), "resolved")
            else:
                self.put(_update(prev, "firing", value, now, annotations))
        elif prev is not None and prev.state == "pending" and prev.active_ns is not None:
            if not held:
                return  # back to inactive: dropped
            if now - prev.active_ns >= rule.for_ns:
                firing = _update(prev, "firing", value, now, annotations, held=True)
                self.put(replace(firing, fired_ns=now), "firing")
            else:
                self.put(_update(prev, "pending", value, now, annotations, held=True))
        elif held:
            self.new(labels, "firing" if rule.for_ns <= 0 else "pending", value)
        elif prev is not None and prev.state == "resolved":
            self.put(_update(prev, "resolved", value, now, annotations))

    def missing(self, prev: Instance) -> None:
        """An instance whose group the evaluation did not return, by the rule's `no_data`."""
        no_data = self.rule.no_data
        if no_data == "keep_last":
            self.put(replace(prev, evaluated_ns=self.now_ns, error=""))
        elif no_data == "nodata":
            if is_firing(prev) or prev.state == "nodata":
                kind: TransitionKind | None = None if prev.state == "nodata" else "nodata"
                self.put(replace(prev, state="nodata", value=None, evaluated_ns=self.now_ns), kind)
            else:  # a pending one starts again when its data is back
                self.new(prev.labels, "nodata", None)
        else:
            self.advance(prev.labels, prev, no_data == "alerting", None)


def _update(
    prev: Instance,
    state: str,
    value: float | None,
    now_ns: int,
    annotations: Labels,
    *,
    held: bool = False,
) -> Instance:
    """`prev` evaluated again at `now_ns`, in `state`; `held`: the condition held at it."""
    return replace(
        prev,
        state=state,
        value=value,
        evaluated_ns=now_ns,
        last_held_ns=now_ns if held else prev.last_held_ns,
        error="",
        annotations=annotations,
    )


def step(rule: Rule, previous: Mapping[str, Instance], evaluation: Evaluation, now_ns: int) -> Step:
    """The rule's instances (by fingerprint) after `evaluation` at `now_ns`, and the
    transitions it caused. `previous` are the rule's instances as the last step left them."""
    current = _Round(rule, now_ns)
    kept = {
        fp: prev
        for fp, prev in previous.items()
        if prev.state != "resolved"
        or prev.resolved_ns is None
        or now_ns - prev.resolved_ns < RESOLVED_KEPT_NS
    }
    if evaluation.error:
        _errored(current, kept, evaluation.error)
        return current.instances, current.transitions
    for key, value in evaluation.values.items():
        labels = dict(key)
        current.advance(labels, kept.get(fingerprint(labels)), rule.holds(value), value)
    base = base_labels(rule)
    for fp, prev in kept.items():
        if fp in current.instances or prev.state == "error":
            continue  # an error instance says the query failed; it did not, this time
        if prev.state == "resolved":
            current.put(replace(prev, evaluated_ns=now_ns))
        elif evaluation.values and prev.labels == base:
            # The rule-wide instance of a query that returned nothing: now it returns groups.
            if is_firing(prev):
                current.advance(prev.labels, prev, False, None)
        else:
            current.missing(prev)
    active = any(i.state != "resolved" for i in current.instances.values())
    if not evaluation.values and not active:
        if rule.no_data == "alerting":
            current.advance(base, kept.get(fingerprint(base)), True, None)
        elif rule.no_data == "nodata":
            current.new(base, "nodata", None)
    return current.instances, current.transitions


def _errored(current: _Round, kept: Mapping[str, Instance], error: str) -> None:
    """A failed evaluation: episodes under way stay as they are, with the error; with none
    under way the rule shows one instance in state `error`."""
    now = current.now_ns
    for prev in kept.values():
        if prev.state == "resolved" or prev.state == "pending" or is_firing(prev):
            current.put(replace(prev, evaluated_ns=now, error=error))
    if not any(i.state != "resolved" for i in current.instances.values()):
        base = base_labels(current.rule)
        fp = fingerprint(base)
        was = kept.get(fp)
        kind: TransitionKind | None = None if was is not None and was.state == "error" else "error"
        current.put(Instance(current.rule.name, base, fp, "error", None, now, error=error), kind)
