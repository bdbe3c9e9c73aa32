"""An alert's episode as an annotation of kind `alert`: recorded when it fires (with what
changed before it started), its end set when it resolves, both announced through the outbox.

Every function joins the caller's transaction: the engine records a round's annotations, their
announcements and the instances that point at them at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from annotations.alerts.context import changes_before
from annotations.alerts.model import ALERTNAME, Instance, Rule
from annotations.alerts.silences import Silence, silenced_by
from annotations.control.db import ControlDB
from annotations.control.errors import NotFoundError
from annotations.control.notes import (
    Annotation,
    add_annotation,
    find_by_key,
    get_annotation,
    update_annotation,
)
from annotations.control.outbox import Outbox

KIND = "alert"
WHO = "shipboard"
"""Who an alert's annotation is by: nobody made it, the rules did."""


def _key(instance: Instance, fired_ns: int) -> str:
    # One annotation per episode, even when two nodes both saw it fire (a lock handed over
    # in the middle of a round): the second insert finds the first.
    return f"alert {instance.fingerprint} {fired_ns}"


def _group(rule: Rule, labels: dict[str, str]) -> dict[str, str]:
    """The labels that tell this instance from the rule's others (its `group_by` values)."""
    return {k: v for k, v in labels.items() if k != ALERTNAME and k not in rule.labels}


def open_episode(
    db: ControlDB, rule: Rule, instance: Instance, outbox: Outbox, silences: Sequence[Silence]
) -> Instance:
    """Record the annotation of `instance`, just gone firing, and announce it to the rule's
    `notify` targets (every target without it) unless a silence matches; the instance with
    the annotation's id."""
    fired_ns = instance.fired_ns if instance.fired_ns is not None else instance.evaluated_ns
    key = _key(instance, fired_ns)
    existing = find_by_key(db, key)
    if existing is not None:
        return replace(instance, annotation_id=existing.id)
    started_ns = instance.active_ns if instance.active_ns is not None else fired_ns
    silenced = silenced_by(silences, instance.labels)
    extra: dict[str, Any] = {
        "rule": rule.name,
        "fingerprint": instance.fingerprint,
        "state": "firing",
        "value": instance.value,
        "op": rule.op,
        "threshold": rule.threshold,
        "group": _group(rule, instance.labels),
        "annotations": instance.annotations,
        "started_ns": started_ns,
        "changes": changes_before(db, started_ns),
        "silenced_by": silenced,
        "notified": not silenced,
    }
    annotation_id = add_annotation(
        db,
        KIND,
        start_ns=fired_ns,
        title=rule.name,
        body=instance.annotations.get("summary", ""),
        who=WHO,
        tags=instance.labels,
        extra=extra,
        idempotency_key=key,
    )
    if not silenced:
        outbox.append(db, get_annotation(db, annotation_id), "added", targets=rule.notify)
    return replace(instance, annotation_id=annotation_id)


def _open_annotation(db: ControlDB, instance: Instance) -> Annotation | None:
    """The instance's annotation while it has no end (None once ended, or deleted)."""
    if instance.annotation_id is None:
        return None
    try:
        annotation = get_annotation(db, instance.annotation_id)
    except NotFoundError:
        return None
    return annotation if annotation.end_ns is None else None


def close_episode(
    db: ControlDB, rule: Rule, instance: Instance, outbox: Outbox, silences: Sequence[Silence]
) -> None:
    """End the annotation of `instance`, just resolved, at its resolve; announced to whom its
    firing was, unless a silence matches now (as Alertmanager, a silenced alert is quiet)."""
    annotation = _open_annotation(db, instance)
    if annotation is None:
        return
    end_ns = instance.resolved_ns if instance.resolved_ns is not None else instance.evaluated_ns
    extra = {**annotation.extra, "state": "resolved", "resolved_value": instance.value}
    update_annotation(db, annotation.id, end_ns=end_ns, extra=extra)
    if annotation.extra.get("notified") and not silenced_by(silences, instance.labels):
        outbox.append(db, get_annotation(db, annotation.id), "updated", targets=rule.notify)


def abandon_episode(db: ControlDB, instance: Instance, now_ns: int) -> None:
    """End the annotation of a firing instance whose rule was removed from the files, without
    a word: nobody resolved it, the band just stops being drawn as still open."""
    annotation = _open_annotation(db, instance)
    if annotation is not None:
        extra = {**annotation.extra, "state": "removed"}
        update_annotation(db, annotation.id, end_ns=max(now_ns, annotation.start_ns), extra=extra)
