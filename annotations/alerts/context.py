"""What changed before an alert started: the deploys and flag changes of the half hour before,
kept in the alert's annotation so that every notification answers the first question asked."""

from __future__ import annotations

from typing import Any

from annotations.control.db import ControlDB
from annotations.control.notes import Annotation, list_annotations
from storage.records import NS_PER_S

CHANGES_WINDOW_NS = 30 * 60 * NS_PER_S
MAX_CHANGES = 20
"""Kept in an annotation at most, the latest first (a chat line shows fewer)."""

Change = dict[str, Any]
"""One change as stored in `extra["changes"]`: JSON, read back by the chat lines."""


def _deploy(deploy: Annotation) -> Change:
    extra = deploy.extra
    return {
        "kind": "deploy",
        "id": deploy.id,
        "at_ns": deploy.start_ns,
        "who": deploy.who,
        "service": deploy.tags.get("service", ""),
        "environment": deploy.tags.get("environment", ""),
        "version": str(extra.get("version", "")),
        "status": str(extra.get("status", "")),
        "watch": [str(item) for item in extra.get("watch", [])],
        "risk": str(extra.get("risk", "")),
        "rollback": str(extra.get("rollback", "")),
    }


def _flag(change: Annotation) -> Change:
    return {
        "kind": "flag",
        "id": change.id,
        "at_ns": change.start_ns,
        "who": change.who,
        "flag": change.tags.get("flag", ""),
        "environment": change.tags.get("environment", ""),
        "change": change.title,
    }


def changes_before(
    db: ControlDB, start_ns: int, window_ns: int = CHANGES_WINDOW_NS
) -> list[Change]:
    """The deploys (who, service, version, status, watch, risk, rollback) and flag changes
    under way in the `window_ns` before `start_ns`, latest first. A change that concerns
    every environment of a flag (a kill) is recorded once per environment: listed once."""
    found = list_annotations(
        db, start_ns - window_ns, start_ns, kinds=("deploy", "flag"), newest_first=True
    )
    changes: list[Change] = []
    seen_flags: set[tuple[str, str, str, int]] = set()
    for annotation in found:
        if annotation.kind == "deploy":
            changes.append(_deploy(annotation))
            continue
        key = (
            annotation.tags.get("flag", ""),
            annotation.title,
            annotation.who,
            annotation.start_ns,
        )
        if key in seen_flags:
            continue
        seen_flags.add(key)
        changes.append(_flag(annotation))
    return changes[:MAX_CHANGES]
