"""Alert rules' knob actions in the control DB: the knob each set (one per flag environment),
what to and what it was before, and since when its rule has stopped firing. Read by the routes;
written by `annotations.alerts.knob_actions`, which steps them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from annotations.control.db import ControlDB, Row
from annotations.control.timespec import format_time

COLUMNS = "flag, environment, rule, set_value, previous, revert_after_ns, started_ns, resolved_ns"
Knob = tuple[str, str]
"""A flag key and one of its environments."""


@dataclass(frozen=True, slots=True)
class KnobAction:
    """A knob an alert rule set: what to, what it was before (None: it had no value), and since
    when the rule has had no firing alert (None while it fires)."""

    flag: str
    environment: str
    rule: str
    set_value: Any
    previous: Any
    revert_after_ns: int
    started_ns: int
    resolved_ns: int | None

    @classmethod
    def from_row(cls, row: Row) -> KnobAction:
        previous = row["previous"]
        resolved_ns = row["resolved_ns"]
        return cls(
            row["flag"],
            row["environment"],
            row["rule"],
            orjson.loads(row["set_value"]),
            None if previous is None else orjson.loads(previous),
            int(row["revert_after_ns"]),
            int(row["started_ns"]),
            None if resolved_ns is None else int(resolved_ns),
        )

    @property
    def knob(self) -> Knob:
        return self.flag, self.environment

    def to_json(self) -> dict[str, Any]:
        """The action as `GET /api/v1/rules` shows it beside its rule."""
        reverts = None if self.resolved_ns is None else self.resolved_ns + self.revert_after_ns
        return {
            "flag": self.flag,
            "environment": self.environment,
            "set": self.set_value,
            "previous": self.previous,
            "since": format_time(self.started_ns),
            "resolved_since": None if self.resolved_ns is None else format_time(self.resolved_ns),
            "reverts_at": None if reverts is None else format_time(reverts),
        }


def list_knob_actions(db: ControlDB) -> list[KnobAction]:
    """Every action under way, by flag and environment."""
    rows = db.query(f"SELECT {COLUMNS} FROM knob_actions ORDER BY flag, environment")
    return [KnobAction.from_row(row) for row in rows]
