"""Alert instances and rule evaluations in the control DB: what the engine saves each round and
loads on start, so that a restart neither re-pages nor forgets.

Every function joins the caller's transaction (`db.transaction()` nests), so one evaluation
round saves its instances and rule statuses atomically.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from annotations.alerts.model import Instance
from annotations.control.db import ControlDB, Row

_FIELDS = (
    "fingerprint",
    "rule",
    "labels",
    "state",
    "value",
    "active_ns",
    "fired_ns",
    "last_held_ns",
    "resolved_ns",
    "evaluated_ns",
    "error",
    "annotation_id",
    "annotations",
)
_COLUMNS = ", ".join(_FIELDS)
# Two rules whose labels give one fingerprint (a rule's labels naming another's alertname)
# share a row: the last saved wins instead of failing the whole round on the key.
_UPSERT = (
    f"INSERT INTO alert_instances ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})"
    " ON CONFLICT (fingerprint) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _FIELDS[1:])
)


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """A rule's last evaluation as stored: when, how long it took, and why it failed."""

    name: str
    source: str  # `file:line`
    evaluated_ns: int
    duration_s: float
    error: str

    @classmethod
    def from_row(cls, row: Row) -> RuleStatus:
        return cls(
            row["name"],
            row["source"],
            int(row["evaluated_ns"]),
            float(row["duration_s"]),
            row["error"],
        )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _finite_or_none(value: float | None) -> float | None:
    # SQLite stores NaN as NULL: store it so on PostgreSQL too, and read back the same.
    return None if value is None or math.isnan(value) else value


def _storable(error: str) -> str:
    # An error's text may quote any input; PostgreSQL's text cannot hold NUL.
    return error.replace("\x00", "\ufffd")


def _instance(row: Row) -> Instance:
    value = row["value"]
    return Instance(
        rule=row["rule"],
        labels=orjson.loads(row["labels"]),
        fingerprint=row["fingerprint"],
        state=row["state"],
        value=None if value is None else float(value),
        evaluated_ns=int(row["evaluated_ns"]),
        active_ns=_int(row["active_ns"]),
        fired_ns=_int(row["fired_ns"]),
        last_held_ns=_int(row["last_held_ns"]),
        resolved_ns=_int(row["resolved_ns"]),
        error=row["error"],
        annotation_id=_int(row["annotation_id"]),
        annotations=orjson.loads(row["annotations"]),
    )


def load_instances(db: ControlDB) -> dict[str, Instance]:
    """Every stored instance by fingerprint."""
    rows = db.query(f"SELECT {_COLUMNS} FROM alert_instances ORDER BY rule, fingerprint")
    return {row["fingerprint"]: _instance(row) for row in rows}


def save_instances(db: ControlDB, rule: str, instances: Mapping[str, Instance]) -> None:
    """Replace `rule`'s stored instances with `instances` (by fingerprint)."""
    with db.transaction():
        db.execute("DELETE FROM alert_instances WHERE rule = ?", (rule,))
        for instance in instances.values():
            db.execute(
                _UPSERT,
                (
                    instance.fingerprint,
                    rule,
                    orjson.dumps(instance.labels).decode(),
                    instance.state,
                    _finite_or_none(instance.value),
                    instance.active_ns,
                    instance.fired_ns,
                    instance.last_held_ns,
                    instance.resolved_ns,
                    instance.evaluated_ns,
                    _storable(instance.error),
                    instance.annotation_id,
                    orjson.dumps(instance.annotations).decode(),
                ),
            )


def record_rule_status(
    db: ControlDB, name: str, source: str, evaluated_ns: int, duration_s: float, error: str
) -> None:
    """Keep `name`'s last evaluation (replacing the one before)."""
    db.execute(
        "INSERT INTO alert_rules (name, source, evaluated_ns, duration_s, error)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET source = excluded.source,"
        " evaluated_ns = excluded.evaluated_ns, duration_s = excluded.duration_s,"
        " error = excluded.error",
        (name, source, evaluated_ns, duration_s, _storable(error)),
    )


def rule_statuses(db: ControlDB) -> dict[str, RuleStatus]:
    """Every rule's last evaluation by name."""
    rows = db.query(
        "SELECT name, source, evaluated_ns, duration_s, error FROM alert_rules ORDER BY name"
    )
    return {row["name"]: RuleStatus.from_row(row) for row in rows}


def drop_rules_except(db: ControlDB, names: Iterable[str]) -> None:
    """Forget the statuses and instances of every rule not in `names` (removed from the
    files): their alerts are no longer shown."""
    keep = set(names)
    with db.transaction():
        stored = db.query(
            "SELECT name FROM alert_rules UNION SELECT DISTINCT rule AS name FROM alert_instances"
        )
        for gone in sorted({row["name"] for row in stored} - keep):
            db.execute("DELETE FROM alert_rules WHERE name = ?", (gone,))
            db.execute("DELETE FROM alert_instances WHERE rule = ?", (gone,))
