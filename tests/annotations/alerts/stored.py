"""Alert instances as the engine stores them, written briefly: one in a state since a time."""

from __future__ import annotations

from annotations.alerts.instances import save_instances
from annotations.alerts.model import Instance, fingerprint
from annotations.control.db import ControlDB


def stored(
    rule: str,
    state: str,
    labels: dict[str, str],
    value: float,
    since_ns: int,
    now_ns: int,
    summary: str = "",
) -> Instance:
    """An instance of `rule` in `state` since `since_ns` (pending since, or fired then),
    evaluated at `now_ns`; a resolved one resolved then."""
    labels = {"alertname": rule, **labels}
    return Instance(
        rule,
        labels,
        fingerprint(labels),
        state,
        value,
        now_ns,
        active_ns=since_ns,
        fired_ns=since_ns if state in ("firing", "resolved") else None,
        resolved_ns=now_ns if state == "resolved" else None,
        annotations={"summary": summary} if summary else {},
    )


def save_all(db: ControlDB, *instances: Instance) -> None:
    """Save the instances rule by rule, as the engine's rounds do."""
    for rule in sorted({i.rule for i in instances}):
        save_instances(db, rule, {i.fingerprint: i for i in instances if i.rule == rule})
