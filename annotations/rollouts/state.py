"""Where a flag environment's rollout plan stands, one row of the `rollouts` table per plan.

Status: `running` (the engine steps it), `paused` (by a person, by a change of the percentage by
hand, or after holding too long), `halted` (a guard regressed; the percentage was set back) and
`done` (the last step is set). `step` indexes the plan's steps (-1 below the first), `percentage`
is the one the plan last set, so a different one in the flag is a person's change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Self

import orjson

from annotations.control.db import ControlDB, Row
from annotations.flags.rollout_plan import RolloutDoc

RUNNING, PAUSED, HALTED, DONE = "running", "paused", "halted", "done"

_COLUMNS = (
    "flag, environment, plan, status, step, percentage, step_started_ns, next_ns, holds,"
    " reason, evaluation, updated_ns"
)


def plan_text(plan: RolloutDoc) -> str:
    """The plan as stored with its state: a different text is a changed plan."""
    return orjson.dumps(plan.doc(), option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class Rollout:
    flag: str
    environment: str
    plan: str
    status: str
    step: int
    percentage: float
    step_started_ns: int
    next_ns: int | None
    holds: int
    reason: str
    evaluation: dict[str, Any] | None
    updated_ns: int

    @classmethod
    def from_row(cls, row: Row) -> Self:
        evaluation = row["evaluation"]
        return cls(
            flag=row["flag"],
            environment=row["environment"],
            plan=row["plan"],
            status=row["status"],
            step=int(row["step"]),
            percentage=float(row["percentage"]),
            step_started_ns=int(row["step_started_ns"]),
            next_ns=None if row["next_ns"] is None else int(row["next_ns"]),
            holds=int(row["holds"]),
            reason=row["reason"],
            evaluation=None if evaluation is None else orjson.loads(evaluation),
            updated_ns=int(row["updated_ns"]),
        )

    def but(self, **changes: Any) -> Rollout:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """What `GET /api/v1/flags/{key}` shows under `rollout_state.<environment>`."""
        steps = orjson.loads(self.plan)["steps"]
        return {
            "status": self.status,
            "step": self.step + 1,  # 1-based for people: "step 2 of 3"
            "steps": len(steps),
            "percentage": self.percentage,
            "next_step": steps[self.step + 1] if self.step + 1 < len(steps) else None,
            "next_at_ns": self.next_ns if self.status == RUNNING else None,
            "holds": self.holds,
            "reason": self.reason,
            "last_evaluation": self.evaluation,
            "updated_ns": self.updated_ns,
        }


def load_rollouts(db: ControlDB) -> dict[tuple[str, str], Rollout]:
    rows = db.query(f"SELECT {_COLUMNS} FROM rollouts")
    return {(r["flag"], r["environment"]): Rollout.from_row(r) for r in rows}


def load_rollout(db: ControlDB, flag: str, environment: str) -> Rollout | None:
    row = db.query_one(
        f"SELECT {_COLUMNS} FROM rollouts WHERE flag = ? AND environment = ?", (flag, environment)
    )
    return None if row is None else Rollout.from_row(row)


def save_rollout(db: ControlDB, rollout: Rollout) -> None:
    """Insert or replace the row of the rollout's flag environment."""
    evaluation = None if rollout.evaluation is None else orjson.dumps(rollout.evaluation).decode()
    with db.transaction():
        delete_rollout(db, rollout.flag, rollout.environment)
        db.execute(
            f"INSERT INTO rollouts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rollout.flag,
                rollout.environment,
                rollout.plan,
                rollout.status,
                rollout.step,
                rollout.percentage,
                rollout.step_started_ns,
                rollout.next_ns,
                rollout.holds,
                rollout.reason,
                evaluation,
                rollout.updated_ns,
            ),
        )


def delete_rollout(db: ControlDB, flag: str, environment: str) -> None:
    db.execute("DELETE FROM rollouts WHERE flag = ? AND environment = ?", (flag, environment))
