"""Alertmanager's grouping for Alertmanager-style targets: which alerts go out together, when.

Per target (its `Grouping`) the firing and resolved alerts routed to it are grouped by the
values of its `group_by` labels. A new group waits `group_wait` before its first notification,
so that alerts firing together arrive together; a changed group (an alert newly firing, or one
that was notified and has resolved) goes out `group_interval` after the last notification; an
unchanged firing group is sent again every `repeat_interval`. A resolved alert is sent once
(status resolved, with its endsAt) and then leaves the group; when none is left firing the
group sends one resolved message and is gone. Silenced alerts are left out.

Each notification is queued as an announcement row for its target
(`annotations.control.outbox.enqueue`, event `alerts`, the annotation being Alertmanager's
webhook payload, version 4), in the same transaction that records the group's state in
`alert_groups`: delivery is the notifier's (queued, retried, durable), and a restart neither
sends a group again nor forgets what it was sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from annotations.alerts.model import ALERTNAME, ALL_LABELS, Grouping, Instance, Rule
from annotations.alerts.silences import Silence, silenced_by
from annotations.control.db import ControlDB
from annotations.control.links import dashboard_link
from annotations.control.outbox import Announcement, enqueue
from annotations.control.timespec import format_time

EVENT = "alerts"
FIRING_ENDS_AT = "0001-01-01T00:00:00Z"
"""The endsAt of a firing alert, as Alertmanager sends it (Go's zero time)."""
NOTIFIED_STATES = ("firing", "resolved")


@dataclass(frozen=True, slots=True)
class GroupState:
    """What a target was last sent of one group, and the earliest it may be sent it again."""

    fingerprints: frozenset[str]  # the alerts last sent as firing
    next_ns: int  # the end of group_wait, then last_sent + group_interval (or the repeat)
    last_sent_ns: int | None = None  # None: not sent yet, waiting for group_wait


def step(
    grouping: Grouping,
    state: GroupState | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    now_ns: int,
) -> tuple[GroupState | None, frozenset[str]]:
    """PURE: a group's next state (None: no group) given the fingerprints of its `firing` and
    `resolved` alerts now, and those to send now (empty: nothing is due)."""
    if state is None:
        if not firing:
            return None, frozenset()
        state = GroupState(frozenset(), now_ns + grouping.group_wait_ns)
    if state.last_sent_ns is None:
        if not firing:  # resolved before anyone was told: nothing to say
            return None, frozenset()
        if now_ns < state.next_ns:
            return state, frozenset()
        return GroupState(firing, now_ns + grouping.group_interval_ns, now_ns), firing
    ended = resolved & state.fingerprints
    if not firing and not ended:  # the rest was silenced or forgotten: the group is gone
        return None, frozenset()
    changed = bool(firing - state.fingerprints or ended)
    wait_ns = grouping.group_interval_ns if changed else grouping.repeat_interval_ns
    due_ns = state.last_sent_ns + wait_ns
    if now_ns < due_ns:
        return replace(state, next_ns=due_ns), frozenset()
    if not firing:  # the group's one resolved message: it ends the group
        return None, ended
    return GroupState(firing, now_ns + grouping.group_interval_ns, now_ns), firing | ended


def group_labels(grouping: Grouping, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that name an alert's group for `grouping` (those of `group_by` it has)."""
    if grouping.group_by == (ALL_LABELS,):
        return dict(sorted(labels.items()))
    return {name: labels[name] for name in sorted(grouping.group_by) if name in labels}


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The pairs every one of `maps` has."""
    if not maps:
        return {}
    first, *rest = maps
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in rest)}


def starts_ns(instance: Instance) -> int:
    """When an alert started firing (as Prometheus sends startsAt)."""
    for ns in (instance.fired_ns, instance.active_ns):
        if ns is not None:
            return ns
    return instance.evaluated_ns


def payload(
    receiver: str,
    groups: Mapping[str, str],
    alerts: Sequence[Instance],
    external_url: str,
) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) for a group's `alerts` sent to `receiver`;
    an alert is `firing` in state firing, else `resolved` (its endsAt: when it resolved)."""
    ordered = sorted(alerts, key=lambda a: (sorted(a.labels.items()), a.fingerprint))
    entries: list[dict[str, Any]] = []
    for alert in ordered:
        firing = alert.state == "firing"
        ends = alert.resolved_ns if alert.resolved_ns is not None else alert.evaluated_ns
        entries.append(
            {
                "status": "firing" if firing else "resolved",
                "labels": {ALERTNAME: alert.rule, **dict(sorted(alert.labels.items()))},
                "annotations": dict(sorted(alert.annotations.items())),
                "startsAt": format_time(starts_ns(alert)),
                "endsAt": FIRING_ENDS_AT if firing else format_time(ends),
                "generatorURL": dashboard_link(external_url, starts_ns(alert)),
                "fingerprint": alert.fingerprint,
            }
        )
    return {
        "version": "4",
        "status": "firing" if any(e["status"] == "firing" for e in entries) else "resolved",
        "receiver": receiver,
        "groupLabels": dict(groups),
        "commonLabels": _common([e["labels"] for e in entries]),
        "commonAnnotations": _common([e["annotations"] for e in entries]),
        "externalURL": external_url,
        "alerts": entries,
    }


def announcement(body: dict[str, Any]) -> Announcement:
    """The announcement row of a payload: a title as Alertmanager's default template writes
    it (`[FIRING:2] HighErrorRate web`), and the dashboards at the first alert's start."""
    firing = sum(1 for alert in body["alerts"] if alert["status"] == "firing")
    status = f"FIRING:{firing}" if body["status"] == "firing" else "RESOLVED"
    named = " ".join(body["groupLabels"].values())
    links = [(alert["startsAt"], alert["generatorURL"]) for alert in body["alerts"]]
    link: str = min(links)[1] if links else ""
    return Announcement(f"[{status}] {named}".rstrip(), EVENT, link, body)


def _routed(instance: Instance, target: str, rules: Mapping[str, Rule]) -> bool:
    """Whether `target` is one the instance's rule notifies (every target by default)."""
    rule = rules.get(instance.rule)
    return rule is None or rule.notify is None or target in rule.notify


def _key(labels: Mapping[str, str]) -> str:
    return orjson.dumps(dict(sorted(labels.items()))).decode()


def load_groups(db: ControlDB) -> dict[tuple[str, str], GroupState]:
    """Every target's groups as last recorded, by (target, group key)."""
    rows = db.query(
        "SELECT target, group_key, fingerprints, next_ns, last_sent_ns FROM alert_groups"
    )
    return {
        (row["target"], row["group_key"]): GroupState(
            frozenset(orjson.loads(row["fingerprints"])),
            int(row["next_ns"]),
            None if row["last_sent_ns"] is None else int(row["last_sent_ns"]),
        )
        for row in rows
    }


def _save(
    db: ControlDB, target: str, key: str, before: GroupState | None, after: GroupState | None
) -> None:
    if after == before:
        return
    if after is None:
        db.execute("DELETE FROM alert_groups WHERE target = ? AND group_key = ?", (target, key))
        return
    values = (orjson.dumps(sorted(after.fingerprints)).decode(), after.next_ns, after.last_sent_ns)
    if before is None:
        db.execute(
            "INSERT INTO alert_groups (fingerprints, next_ns, last_sent_ns, target, group_key)"
            " VALUES (?, ?, ?, ?, ?)",
            (*values, target, key),
        )
    else:
        db.execute(
            "UPDATE alert_groups SET fingerprints = ?, next_ns = ?, last_sent_ns = ?"
            " WHERE target = ? AND group_key = ?",
            (*values, target, key),
        )


def dispatch(
    db: ControlDB,
    groupings: Sequence[Grouping],
    instances: Mapping[str, Instance],
    silences: Iterable[Silence],
    now_ns: int,
    external_url: str = "",
    *,
    rules: Mapping[str, Rule] | None = None,
) -> int:
    """Queue the notifications of every Alertmanager-style target that are due at `now_ns`
    and record its groups; `instances` by fingerprint, `silences` those in force (expired ones
    match nothing), `rules` by name for their `notify` (a rule not given notifies every
    target). Joins the caller's transaction; how many notifications were queued."""
    rules = rules or {}
    in_force = list(silences)
    candidates = [
        instance
        for instance in instances.values()
        if instance.state in NOTIFIED_STATES and not silenced_by(in_force, instance.labels)
    ]
    queued = 0
    with db.transaction():
        stored = load_groups(db)
        configured = {grouping.target for grouping in groupings}
        for target, key in stored:
            if target not in configured:  # a target no longer configured: its groups go too
                _save(db, target, key, stored[target, key], None)
        for grouping in groupings:
            groups: dict[str, tuple[dict[str, str], list[Instance]]] = {}
            for instance in candidates:
                if _routed(instance, grouping.target, rules):
                    labels = group_labels(grouping, instance.labels)
                    groups.setdefault(_key(labels), (labels, []))[1].append(instance)
            keys = set(groups) | {k for t, k in stored if t == grouping.target}
            for key in sorted(keys):
                labels, members = groups.get(key, ({}, []))
                before = stored.get((grouping.target, key))
                after, send = step(
                    grouping,
                    before,
                    frozenset(m.fingerprint for m in members if m.state == "firing"),
                    frozenset(m.fingerprint for m in members if m.state == "resolved"),
                    now_ns,
                )
                if send:
                    sent = [m for m in members if m.fingerprint in send]
                    body = payload(grouping.target, labels, sent, external_url)
                    enqueue(db, [grouping.target], announcement(body), now_ns)
                    queued += 1
                _save(db, grouping.target, key, before, after)
    return queued
